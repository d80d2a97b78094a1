"""smbisect: find the commit that made a benchmark slower, with real git bisect and statistics."""

__version__ = "0.2.0"
