"""A tiny array pool (the numpy counterpart of .NET's ``ArrayPool<T>``).

The model's forward/backward passes need the same set of intermediate shapes on every
step.  Renting those buffers from a pool and giving them back afterwards means a steady
state training or inference loop allocates (almost) nothing, which keeps both time and the
allocation benchmarks stable.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

Key = tuple[tuple[int, ...], np.dtype]


class BufferPool:
    """Free lists of uninitialised arrays keyed by ``(shape, dtype)``.

    ``max_per_key`` bounds each free list and ``max_bytes`` bounds the total memory held
    idle, so workloads with ever-changing shapes (e.g. growing generation contexts) cannot
    make the pool grow without limit; surplus buffers are simply dropped for the GC.
    """

    def __init__(self, max_per_key: int = 256, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_per_key = max_per_key
        self.max_bytes = max_bytes
        self._free: dict[Key, list[np.ndarray]] = defaultdict(list)
        self._held_bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(shape, dtype) -> Key:
        if isinstance(shape, int | np.integer):
            shape = (int(shape),)
        return tuple(int(s) for s in shape), np.dtype(dtype)

    def rent(self, shape, dtype=np.float32, zero: bool = False) -> np.ndarray:
        """Return a C-contiguous array of ``shape``/``dtype``; contents are garbage unless
        ``zero`` is set."""
        key = self._key(shape, dtype)
        free = self._free.get(key)
        if free:
            arr = free.pop()
            self._held_bytes -= arr.nbytes
            self.hits += 1
        else:
            arr = np.empty(key[0], dtype=key[1])
            self.misses += 1
        if zero:
            arr.fill(0)
        return arr

    def give_back(self, arr: np.ndarray) -> None:
        """Return ``arr`` to the pool.  Views are refused: their base would stay alive and
        a later renter could alias memory still used elsewhere."""
        if arr.base is not None or not arr.flags.c_contiguous or not arr.flags.writeable:
            raise ValueError("only owning, C-contiguous, writeable arrays can be given back")
        key = (arr.shape, arr.dtype)
        free = self._free[key]
        if len(free) >= self.max_per_key or self._held_bytes + arr.nbytes > self.max_bytes:
            return
        if any(a is arr for a in free):
            raise ValueError("array was given back twice")
        free.append(arr)
        self._held_bytes += arr.nbytes

    def give_back_all(self, arrays) -> None:
        """Give back every array in an iterable (convenience for end-of-step cleanup)."""
        for arr in arrays:
            self.give_back(arr)

    @property
    def held_bytes(self) -> int:
        """Bytes currently idle in the pool."""
        return self._held_bytes

    def __len__(self) -> int:
        return sum(len(v) for v in self._free.values())

    def clear(self) -> None:
        """Drop every idle buffer."""
        self._free.clear()
        self._held_bytes = 0
