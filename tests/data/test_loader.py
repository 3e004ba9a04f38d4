"""DataLoader: each sample once per epoch, deterministic per seed, memory maps, errors."""

from __future__ import annotations

import numpy as np
import pytest

import syntonic as sn


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("prefetch", [False, True])
def test_every_sample_once_per_epoch(shuffle, drop_last, prefetch):
    x = np.arange(103 * 2).reshape(103, 2)
    y = np.arange(103)
    loader = sn.data.DataLoader((x, y), batch_size=10, shuffle=shuffle, seed=4,
                                drop_last=drop_last, prefetch=prefetch)
    seen = []
    for xb, yb in loader.epoch(0):
        np.testing.assert_array_equal(xb[:, 0], yb * 2)  # arrays stay aligned
        seen.extend(yb.tolist())
    assert len(loader) == (10 if drop_last else 11)
    if drop_last:
        assert len(seen) == 100 and len(set(seen)) == 100
    else:
        assert sorted(seen) == list(range(103))
    if shuffle:
        assert seen != sorted(seen)


def test_order_is_deterministic_per_seed_and_epoch():
    y = np.arange(50)
    a = sn.data.DataLoader(y, 7, shuffle=True, seed=1)
    b = sn.data.DataLoader(y, 7, shuffle=True, seed=1)
    c = sn.data.DataLoader(y, 7, shuffle=True, seed=2)
    ea = np.concatenate(list(a.epoch(3)))
    np.testing.assert_array_equal(ea, np.concatenate(list(b.epoch(3))))
    assert not np.array_equal(ea, np.concatenate(list(c.epoch(3))))
    assert not np.array_equal(ea, np.concatenate(list(a.epoch(4))))
    first, second = (np.concatenate(list(e)) for e in (iter(a), iter(a)))
    np.testing.assert_array_equal(first, np.concatenate(list(b.epoch(0))))
    np.testing.assert_array_equal(second, np.concatenate(list(b.epoch(1))))


def test_memory_mapped_npy(tmp_path):
    x = np.random.default_rng(0).standard_normal((1000, 8)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    loader = sn.data.DataLoader(str(path), 64, shuffle=True, seed=0)
    assert isinstance(loader.arrays[0], np.memmap)
    rows = np.concatenate(list(loader.epoch(0)))
    order = loader.order(0)
    np.testing.assert_array_equal(rows, x[order])


def test_early_break_does_not_hang():
    loader = sn.data.DataLoader(np.arange(10_000), 1)
    for i, _ in enumerate(loader.epoch(0)):
        if i == 3:
            break


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(sn.data.DataError, match="different lengths"):
        sn.data.DataLoader((np.zeros(3), np.zeros(4)), 2)
    with pytest.raises(sn.data.DataError, match="batch_size"):
        sn.data.DataLoader(np.zeros(3), 0)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(sn.data.DataError, match="cannot memory-map"):
        sn.data.DataLoader(str(bad), 2)
    assert issubclass(sn.data.DataError, sn.SyntonicError)
