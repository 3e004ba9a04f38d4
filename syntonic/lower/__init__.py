"""Lowering: the kernel IR shared by the backends, and the backends themselves.

:mod:`syntonic.lower.kernel` defines the kernel IR (one kernel per fused group: its
iteration space, loads through views, a scalar expression DAG, reductions and stores);
:mod:`syntonic.lower.schedule` builds it from a fused graph; :mod:`syntonic.lower.
kernel_interp` runs it with numpy (the reference the backends are tested against);
``cpu/`` and ``cuda/`` generate native code from it.
"""

from __future__ import annotations
