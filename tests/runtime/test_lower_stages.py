"""f.lower(...).text("llvm") / ("asm"): backend stages next to the IR stages."""

from __future__ import annotations

import syntonic as sn


def test_llvm_and_asm_stages_are_annotated_and_listed():
    @sn.jit
    def step(x):
        return sn.harmonize(x - x.mean(axis=-1, keepdims=True))

    lowered = step.lower(sn.spec("f32[4,248]"))
    assert {"llvm", "asm"} <= set(lowered.stages)
    llvm = lowered.text("llvm")
    assert "define" in llvm and "test_lower_stages.py" in llvm
    asm = lowered.text("asm")
    assert len(asm) > 100 and ("ret" in asm or "ret\n" in asm)
    assert "llvm" not in sn.jit(step.__wrapped__, device="interpreter").lower(
        sn.spec("f32[4,248]")).stages
