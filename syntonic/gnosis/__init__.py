"""Persistence and the resonant engine around the ops: ``.gnosis`` files, FluxBridge and
the Ouroboros daemon (``python -m syntonic daemon``).

Example::

    import syntonic as sn
    from syntonic.gnosis import decode, encode

    sn.save("mind.gnosis", {"state": encode("Hello"), "cycle": 0})
    print(decode(sn.load("mind.gnosis")["state"]))      # Hello
"""

from __future__ import annotations

from syntonic.gnosis.flux import decode, emit_text, encode, m11_stable
from syntonic.gnosis.format import load, save, temp_files
from syntonic.ir.errors import GnosisError

__all__ = ["GnosisError", "decode", "emit_text", "encode", "load", "m11_stable", "save",
           "temp_files"]
