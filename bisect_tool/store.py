"""Measurements cached per (machine, runner settings, commit, benchmark), as plain JSON.

A repeated or widened bisect reuses what was measured; asking for more rounds appends to what is
there. The cache lives outside the user's repository (under the user cache directory), so it
never shows up in their status.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE_VERSION = 1


@dataclass
class Entry:
    samples: list[float] = field(default_factory=list)
    rounds: int = 0
    error: str | None = None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smbisect"


class MeasurementStore:
    """In-memory measurements, loaded from and saved to one JSON file per repository."""

    def __init__(self, path: Path | None, read_existing: bool = True) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}
        self._touched: set[str] = set()
        if path is not None and read_existing and path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = {}
            if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
                for key, raw in data.get("entries", {}).items():
                    self._entries[key] = Entry(
                        [float(x) for x in raw.get("samples", [])],
                        int(raw.get("rounds", 0)),
                    )

    @staticmethod
    def for_repository(cache_dir: Path, repo_id: str, read_existing: bool) -> MeasurementStore:
        # a path that is not valid UTF-8 (kept as surrogates) hashes as its original bytes
        digest = hashlib.sha256(repo_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return MeasurementStore(cache_dir / f"{digest}.json", read_existing)

    @staticmethod
    def key(machine: str, settings: str, commit: str, benchmark: str) -> str:
        return json.dumps([machine, settings, commit, benchmark])

    def get(self, key: str) -> Entry:
        return self._entries.get(key) or Entry()

    def add(self, key: str, samples: list[float], rounds: int) -> Entry:
        entry = self._entries.setdefault(key, Entry())
        entry.samples.extend(samples)
        entry.rounds += rounds
        entry.error = None
        self._touched.add(key)
        return entry

    def fail(self, key: str, error: str) -> None:
        self._entries[key] = Entry(error=error)
        self._touched.add(key)

    def save(self) -> None:
        """Merge what this run measured into the file, atomically."""
        if self.path is None or not self._touched:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        on_disk = MeasurementStore(self.path)
        for key in self._touched:
            on_disk._entries[key] = self._entries[key]
        # failures stay in memory: a timeout or a missing dependency today must not make a
        # commit unmeasurable in every later run
        payload = {
            "version": CACHE_VERSION,
            "entries": {
                k: {"samples": e.samples, "rounds": e.rounds}
                for k, e in on_disk._entries.items()
                if e.samples
            },
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh)
        os.replace(tmp, self.path)
