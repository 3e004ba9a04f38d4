"""``sn.data.DataLoader``: batches from numpy arrays or memory-mapped ``.npy`` files.

Every sample appears exactly once per epoch; the order is a deterministic function of
``(seed, epoch)``; the next batch is gathered on a background thread while the current
one is used. Memory-mapped sources are read batch by batch, so data larger than RAM works.

Example::

    loader = sn.data.DataLoader((x_train, y_train), batch_size=128, shuffle=True, seed=0)
    for epoch in range(3):
        for xb, yb in loader.epoch(epoch):
            ...
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from syntonic.ir.errors import SyntonicError


class DataError(SyntonicError):
    """Inconsistent or unreadable data given to a DataLoader."""


def _open(source: Any) -> np.ndarray:
    if isinstance(source, (str, os.PathLike)):
        try:
            return np.load(source, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot memory-map {os.fspath(source)!r} as .npy: {exc}") from None
    arr = np.asarray(source)
    if arr.dtype == object:
        raise DataError("DataLoader sources must be numeric arrays, got dtype=object")
    return arr


class DataLoader:
    """Batches of one or more aligned arrays (first axis = samples)."""

    def __init__(self, sources: Any, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, prefetch: bool = True) -> None:
        single = not isinstance(sources, (tuple, list))
        self._single = single
        self.arrays: Sequence[np.ndarray] = [_open(s) for s in ([sources] if single else sources)]
        if not self.arrays:
            raise DataError("DataLoader needs at least one array")
        lengths = {len(a) for a in self.arrays}
        if len(lengths) != 1:
            raise DataError(f"DataLoader arrays have different lengths: {sorted(lengths)}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise DataError(f"batch_size must be a positive int, got {batch_size!r}")
        self.n = lengths.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.prefetch = prefetch
        self._epoch = 0

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if self.drop_last or rest == 0 else full + 1

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of `epoch` (a permutation when shuffling)."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def _batch(self, idx: np.ndarray) -> Any:
        if not self.shuffle:  # contiguous: a slice reads a memory map sequentially
            parts = [np.ascontiguousarray(a[idx[0]: idx[-1] + 1]) for a in self.arrays]
        else:
            sorted_idx = np.sort(idx)  # sorted reads are kinder to memory maps...
            inverse = np.argsort(np.argsort(idx))  # ...then restore the shuffled order
            parts = [np.asarray(a[sorted_idx])[inverse] for a in self.arrays]
        return parts[0] if self._single else tuple(parts)

    def _batches(self, epoch: int) -> Iterator[np.ndarray]:
        order = self.order(epoch)
        for k in range(len(self)):
            yield order[k * self.batch_size:(k + 1) * self.batch_size]

    def epoch(self, epoch: int) -> Iterator[Any]:
        """Iterate the batches of one epoch (deterministic for a given seed and epoch)."""
        if not self.prefetch:
            for idx in self._batches(epoch):
                yield self._batch(idx)
            return
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def worker() -> None:
            try:
                for idx in self._batches(epoch):
                    if stop.is_set():
                        return
                    q.put(("batch", self._batch(idx)))
                q.put(("done", None))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
                q.put(("error", exc))

        thread = threading.Thread(target=worker, name="syntonic-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                kind, item = q.get()
                if kind == "done":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(timeout=0.01)

    def __iter__(self) -> Iterator[Any]:
        """Iterate the next epoch (epochs count up from 0 across calls)."""
        epoch = self._epoch
        self._epoch += 1
        return self.epoch(epoch)
