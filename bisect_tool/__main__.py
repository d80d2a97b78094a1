"""`python -m bisect_tool` is the same as the `smbisect` command."""

from .cli import main

main(prog_name="smbisect")
