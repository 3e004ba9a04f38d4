"""Buffer donation (sn.jit donate_argnums/donate_argnames): a compiled train step reuses
the parameter and optimizer-state buffers, gives bitwise the same results as without
donation, and never overwrites an array the caller can still read."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import syntonic as sn
from syntonic.frontend.pytree import flatten, tree_map
from syntonic.runtime.donation import BufferPool


@pytest.fixture(autouse=True)
def _cpu_backend():
    """Donation is a CPU-backend feature: test it there, also on a machine with a GPU."""
    with sn.config.override(device="cpu"):
        yield

STEPS = 6


def mlp_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    model = sn.nn.Sequential(sn.nn.Linear(64, 256), sn.nn.ReLU(), sn.nn.Linear(256, 256),
                             sn.nn.ReLU(), sn.nn.Linear(256, 10))
    params = model.init(seed)
    opt = sn.optim.Adam(1e-3)
    batches = [(rng.standard_normal((32, 64)).astype(np.float32),
                rng.integers(0, 10, 32).astype(np.int32)) for _ in range(STEPS)]
    return model, params, opt, batches


def copy_tree(tree):
    return tree_map(lambda a: np.array(a, copy=True), tree)


def run_steps(step, params, state, batches):
    losses = []
    for x, y in batches:
        params, state, loss = step(params, state, x, y)
        losses.append(float(loss))
    return params, state, losses


def nbytes(tree) -> int:
    return sum(a.nbytes for a in flatten(tree)[0])


def pointers(tree) -> set[int]:
    return {a.__array_interface__["data"][0] for a in flatten(tree)[0]}


def test_donated_train_step_matches_undonated_bitwise_and_the_interpreter():
    model, params, opt, batches = mlp_problem()
    donated = sn.train.train_step(model, sn.nn.cross_entropy, opt)
    plain = sn.train.train_step(model, sn.nn.cross_entropy, opt, donate=False)
    interp = sn.train.train_step(model, sn.nn.cross_entropy, opt, donate=False,
                                 device="interpreter")
    assert donated.donate_argnames == {"params", "opt_state"}
    got = run_steps(donated, copy_tree(params), opt.init(params), batches)
    want = run_steps(plain, copy_tree(params), opt.init(params), batches)
    ref = run_steps(interp, copy_tree(params), opt.init(params), batches)
    assert got[2] == want[2]
    for g, w, r in zip(flatten(got[:2])[0], flatten(want[:2])[0], flatten(ref[:2])[0]):
        assert g.dtype == w.dtype and g.shape == w.shape
        assert g.tobytes() == w.tobytes()
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-4)


def test_train_step_allocates_no_parameter_sized_arrays_after_warm_up():
    model, params, opt, batches = mlp_problem()
    step = sn.train.train_step(model, sn.nn.cross_entropy, opt)
    state = opt.init(params)
    param_bytes = nbytes(params)
    for x, y in batches[:3]:  # compile, then fill the pool
        params, state, _ = step(params, state, x, y)
    sn.cache.wait()  # the compiled code is linked and stored in the background
    seen: set[int] = set()
    tracemalloc.start()
    try:
        for x, y in batches[3:] * 3:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            params, state, _ = step(params, state, x, y)
            grown = tracemalloc.get_traced_memory()[1] - before
            # outputs are written into the previous step's donated buffers: the step
            # allocates only the small things (the loss, the buffer table, pytrees)
            assert grown < param_bytes // 20, (grown, param_bytes)
            seen |= pointers((params, state))
    finally:
        tracemalloc.stop()
    n_leaves = len(flatten((params, state))[0])
    assert len(seen) <= 2 * n_leaves  # two sets of buffers, used in turn


def test_without_donation_the_same_step_allocates_its_parameters():
    """The measurement above is sensitive: the undonated step allocates every output."""
    model, params, opt, batches = mlp_problem()
    step = sn.train.train_step(model, sn.nn.cross_entropy, opt, donate=False)
    state = opt.init(params)
    params, state, _ = step(params, state, *batches[0])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        params, state, _ = step(params, state, *batches[1])
        grown = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert grown >= nbytes((params, state))


def test_fast_path_programs_donate_too():
    @sn.jit(donate_argnames=("p", "v"))
    def update(p, v, g):
        v = v * 0.9 + g
        return p - v * 0.01, v

    plain = sn.jit(update.fn)
    rng = np.random.default_rng(1)
    p, v = rng.standard_normal(300).astype(np.float32), np.zeros(300, np.float32)
    q, w = p.copy(), v.copy()
    assert update.lower(p, v, p).text("kernels")  # small and all native: the fast path
    seen: set[int] = set()
    for k in range(8):
        g = rng.standard_normal(300).astype(np.float32)
        p, v = update(p, v, g)
        q, w = plain(q, w, g)
        assert p.tobytes() == q.tobytes() and v.tobytes() == w.tobytes()
        if k >= 2:
            seen |= pointers((p, v))
    assert len(seen) <= 4
    entry = next(iter(update._cache.values()))
    assert entry.native().fast is not None


def test_a_donated_array_the_caller_keeps_is_never_overwritten():
    f = sn.jit(lambda a, b: (a * 2.0 + b, b + 1.0), donate_argnums=(0, 1))
    a = np.arange(64, dtype=np.float32)
    b = np.ones(64, np.float32)
    kept_a, kept_b = a, b  # the caller breaks the promise: keeps and reads them
    a, b = f(a, b)
    for _ in range(4):
        a, b = f(a, b)
        assert not np.shares_memory(a, kept_a) and not np.shares_memory(b, kept_b)
    np.testing.assert_array_equal(kept_a, np.arange(64, dtype=np.float32))
    np.testing.assert_array_equal(kept_b, np.ones(64, np.float32))
    # a view keeps its memory owner alive, so a donated view is not reused either
    owner = np.zeros(64, np.float32)
    view = owner.reshape(8, 8).reshape(64)
    f(view, np.ones(64, np.float32))
    for _ in range(3):
        out, _ = f(np.ones(64, np.float32), np.ones(64, np.float32))
        assert not np.shares_memory(out, owner)
    np.testing.assert_array_equal(owner, 0.0)


def test_a_donated_argument_returned_unchanged_is_returned_as_is():
    f = sn.jit(lambda p, x: (p, p * x), donate_argnums=0)
    p = np.arange(16, dtype=np.float32)
    x = np.full(16, 2.0, np.float32)
    same, scaled = f(p, x)
    assert same is p
    np.testing.assert_array_equal(scaled, np.arange(16) * 2.0)
    for _ in range(3):
        same2, scaled = f(same, x)
        assert same2 is same
        np.testing.assert_array_equal(scaled, np.arange(16) * 2.0)
    g = sn.jit(lambda p, x: (p, p, p + x), donate_argnums=0)  # returned twice
    p = np.arange(16, dtype=np.float32)
    a, b, c = g(p, x)
    assert a is p and b is not p and not np.shares_memory(a, b)
    np.testing.assert_array_equal(b, np.arange(16))


def test_an_array_passed_twice_is_reused_at_most_once():
    f = sn.jit(lambda a, b: (a + b, a - b, a * b), donate_argnums=(0, 1))
    rng = np.random.default_rng(2)
    for _ in range(6):
        a = rng.standard_normal(32).astype(np.float32)
        want = (a + a, a - a, a * a)
        outs = f(a, a)  # the same array donated in two positions
        del a
        for o, w in zip(outs, want):
            np.testing.assert_array_equal(o, w)
        for i in range(3):
            for j in range(i + 1, 3):
                assert not np.shares_memory(outs[i], outs[j])
    # donated and also passed in a non-donated position
    g = sn.jit(lambda a, b: a * 2.0 + b, donate_argnums=0)
    for _ in range(4):
        a = rng.standard_normal(32).astype(np.float32)
        want = a * 2.0 + a
        np.testing.assert_array_equal(g(a, a), want)


def test_concurrent_callers_of_one_donating_function_agree_with_sequential_runs():
    model, params, opt, batches = mlp_problem()
    step = sn.train.train_step(model, sn.nn.cross_entropy, opt)
    want = run_steps(sn.train.train_step(model, sn.nn.cross_entropy, opt, donate=False),
                     copy_tree(params), opt.init(params), batches)
    results: list = [None] * 4

    def worker(k: int) -> None:
        results[k] = run_steps(step, copy_tree(params), opt.init(params), batches)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        assert got is not None and got[2] == want[2]
        for g, w in zip(flatten(got[:2])[0], flatten(want[:2])[0]):
            assert g.tobytes() == w.tobytes()


def test_donation_arguments_are_checked():
    def f(a, b, n=1):
        return a + b

    with pytest.raises(sn.SyntonicError, match="donate_argnums has 5"):
        sn.jit(f, donate_argnums=5)
    with pytest.raises(sn.SyntonicError, match="does not take"):
        sn.jit(f, donate_argnames="c")
    with pytest.raises(sn.SyntonicError, match="both static and donated"):
        sn.jit(f, static_argnames=("n",), donate_argnames=("n",))
    assert sn.jit(f, donate_argnums=-1).donate_argnames == {"n"}


def test_the_pool_takes_only_memory_it_may_own():
    f32 = np.dtype(np.float32)
    pool = BufferPool([((4, 4), f32)])
    pool.give(np.frombuffer(bytearray(64), np.float32))  # memory owned by a bytearray
    pool.give(np.zeros((4, 8), f32)[:, :4])              # not contiguous
    pool.give(np.zeros(16, np.float64))                  # no output of that dtype
    assert len(pool) == 0
    pool.give(np.zeros(16, f32))
    pool.give(np.zeros(16, f32))                         # over capacity (one output)
    assert len(pool) == 1
    out = pool.take((4, 4), f32)
    assert out.shape == (4, 4) and len(pool) == 0
