"""Functions with common user mistakes. Each offending line carries a `# MISTAKE: name` tag.

The catalogue test (test_error_catalogue.py) jits each function, expects an error that
names this file and the tagged line, and a suggested fix.
"""

from __future__ import annotations

import numpy as np

import syntonic as sn

_escaped: list = []


def if_on_traced(x):
    if x.sum() > 0:  # MISTAKE: if_on_traced
        return x
    return -x


def while_on_traced(x):
    while x.max() > 1.0:  # MISTAKE: while_on_traced
        x = x * 0.5
    return x


def float_of_traced(x):
    scale = float(x.mean())  # MISTAKE: float_of_traced
    return x * scale


def range_of_traced(x):
    for _ in range(x.sum()):  # MISTAKE: range_of_traced
        x = x + 1
    return x


def broadcast_mismatch(x, y):
    return x + y  # MISTAKE: broadcast_mismatch


def matmul_mismatch(x, w):
    return x @ w  # MISTAKE: matmul_mismatch


def resonant_on_int(n):
    return sn.harmonize(n)  # MISTAKE: resonant_on_int


def unsupported_numpy_function(x):
    return np.linalg.svd(x)  # MISTAKE: unsupported_numpy_function


def unsupported_ufunc(x):
    return np.arctan2(x, x)  # MISTAKE: unsupported_ufunc


def bad_reshape(x):
    return x.reshape(5, 5)  # MISTAKE: bad_reshape


def axis_out_of_range(x):
    return x.mean(axis=2)  # MISTAKE: axis_out_of_range


def index_out_of_range(x):
    return x[10]  # MISTAKE: index_out_of_range


def boolean_mask_index(x):
    return x[x > 0]  # MISTAKE: boolean_mask_index


def item_assignment(x):
    x[0] = 1.0  # MISTAKE: item_assignment
    return x


def to_numpy_inside(x):
    return np.asarray(x) * 2  # MISTAKE: to_numpy_inside


def item_inside(x):
    return x * x.item()  # MISTAKE: item_inside


def bad_astype(x):
    return x.astype("complex64")  # MISTAKE: bad_astype


def where_on_int_values(x):
    return sn.where(x, x, 0) * sn.mobius_mask(x)  # MISTAKE: where_on_int_values


def leak(x):
    _escaped.append(x)
    return x


def use_leaked(x):
    return x + _escaped[-1]  # MISTAKE: use_leaked
