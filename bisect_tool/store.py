"""Measurements cached per (machine, runner settings, commit, benchmark), as plain JSON.

A repeated or widened bisect reuses what was measured; asking for more rounds appends to what is
there. The cache lives outside the user's repository (under the user cache directory), so it
never shows up in their status.

Safe for concurrent writers: two bisects of one repository at once (or the threads of one
bisect on Dask workers) lose no samples. Each save takes an exclusive lock on a file beside the
cache (fcntl), reads what is on disk, appends only the samples this run added since its last
save, and replaces the file atomically. Only the client writes; Dask workers send their samples
back to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .locks import file_lock

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
        self._new: dict[str, Entry] = {}  # what this run added since its last save
        self._lock = threading.RLock()
        if path is not None and read_existing:
            self._entries = _read(path)

    @staticmethod
    def for_repository(cache_dir: Path, repo_id: str, read_existing: bool) -> MeasurementStore:
        # a path that is not valid UTF-8 (kept as surrogates) hashes as its original bytes
        digest = hashlib.sha256(repo_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        return MeasurementStore(cache_dir / f"{digest}.json", read_existing)

    @staticmethod
    def key(machine: str, settings: str, commit: str, benchmark: str) -> str:
        return json.dumps([machine, settings, commit, benchmark])

    def get(self, key: str) -> Entry:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return Entry()
            return Entry(list(entry.samples), entry.rounds, entry.error)

    def add(self, key: str, samples: list[float], rounds: int) -> Entry:
        with self._lock:
            entry = self._entries.setdefault(key, Entry())
            entry.samples.extend(samples)
            entry.rounds += rounds
            entry.error = None
            delta = self._new.setdefault(key, Entry())
            delta.samples.extend(samples)
            delta.rounds += rounds
            return entry

    def fail(self, key: str, error: str) -> None:
        # failures stay in memory: a timeout or a missing dependency today must not make a
        # commit unmeasurable in every later run
        with self._lock:
            self._entries[key] = Entry(error=error)

    def save(self) -> None:
        """Append what this run measured since its last save to the file, under a lock."""
        with self._lock:
            if self.path is None or not self._new:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(self.path.with_name(self.path.name + ".lock")):
                on_disk = _read(self.path)
                for key, delta in self._new.items():
                    entry = on_disk.setdefault(key, Entry())
                    entry.samples.extend(delta.samples)
                    entry.rounds += delta.rounds
                payload = {
                    "version": CACHE_VERSION,
                    "entries": {
                        k: {"samples": e.samples, "rounds": e.rounds}
                        for k, e in on_disk.items()
                        if e.samples
                    },
                }
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
                with os.fdopen(fd, "w") as fh:
                    json.dump(payload, fh)
                os.replace(tmp, self.path)
            self._new.clear()


def _read(path: Path) -> dict[str, Entry]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    entries: dict[str, Entry] = {}
    if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
        for key, raw in data.get("entries", {}).items():
            entries[key] = Entry(
                [float(x) for x in raw.get("samples", [])], int(raw.get("rounds", 0))
            )
    return entries
