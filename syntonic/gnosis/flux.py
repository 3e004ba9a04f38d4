"""FluxBridge: text to a resonant state and back, and the M11 stability check (SPEC-ops.md).

``encode(text, dim)`` turns each UTF-8 byte b_k of the text into
v_k = (b_k - 127)/128 * phi^-1 and *adds* it into slot ``k mod dim`` of a zero
``[1, dim]`` float64 state. ``decode(x)`` maps every value of x, in C order, back to
b = round-half-even(v/phi^-1 * 128 + 127) and keeps the characters with 32 <= b <= 126.

What round-trips, and what does not:

* Printable ASCII (32..126) of at most `dim` bytes round-trips exactly:
  ``decode(encode(t)) == t``.
* Control characters (newline, tab, ...) and DEL (127) are encoded but dropped by decode;
  an untouched slot decodes to 127, so unused slots vanish too.
* Non-ASCII text is encoded as its UTF-8 bytes (128..255); those bytes never come back
  (decode keeps 32..126 only), so "café" decodes to "caf".
* Longer inputs fold: byte k lands in slot k mod dim on top of byte k - dim, so the sum
  decodes to some other character (or none). Text beyond `dim` bytes is not recoverable.

Example::

    >>> encode("Hello, Syntonic!")[0, :3]
    array([-0.26556148, -0.12553815, -0.09173942])
    >>> decode(encode("Hello, Syntonic!"))
    'Hello, Syntonic!'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from syntonic.ir.errors import GnosisError
from syntonic.ir.resonant import PHI_INV

DIM = 248
M11_POSITION = 2046  # 0-based position of dimension 2047 = 2^11 - 1
M11_TOLERANCE = 1e-9


def encode(text: str | bytes, dim: int = DIM) -> np.ndarray:
    """Encode `text` (``str`` as UTF-8, or raw ``bytes``) into a ``[1, dim]`` f64 state.

    Example: ``encode("Hi")[0, :2]`` is ``[(72-127)/128*phi^-1, (105-127)/128*phi^-1]``.
    """
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise GnosisError(f"FluxBridge dim must be a positive int, got {dim!r}")
    if isinstance(text, str):
        try:  # surrogateescape gives back the bytes of text decoded that way (sys.stdin)
            data = text.encode("utf-8", errors="surrogateescape")
        except UnicodeEncodeError as exc:
            raise GnosisError(f"FluxBridge cannot encode {text!r} as UTF-8: {exc}") from None
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise GnosisError(f"FluxBridge encodes str or bytes, got {type(text).__name__}")
    b = np.frombuffer(data, dtype=np.uint8).astype(np.float64)
    values = (b - 127.0) / 128.0 * PHI_INV
    slots = np.arange(len(data)) % int(dim)
    # bincount adds the weights in input order, exactly like `state[k % dim] += v_k`.
    state = np.bincount(slots, weights=values, minlength=int(dim))
    return state.reshape(1, int(dim))


def decode(x: Any) -> str:
    """Decode a state (any shape, read in C order) to text, keeping bytes 32..126.

    Non-finite values are dropped. Example: ``decode(encode("abc")) == "abc"``.
    """
    v = np.asarray(x, dtype=np.float64).reshape(-1)
    with np.errstate(invalid="ignore", over="ignore"):
        b = np.rint(v / PHI_INV * 128.0 + 127.0)  # rint rounds half to even
        keep = (b >= 32) & (b <= 126)
    return b[keep].astype(np.uint8).tobytes().decode("ascii")


emit_text = decode  # the name the seed used for the way back


def m11_stable(x: Any) -> bool:
    """True when x has at most 2046 values, else when ``|x_flat[2046]| < 1e-9``.

    Position 2046 (0-based) is dimension 2047 = M11, the first composite Mersenne number.
    A NaN there is unstable. Example: ``m11_stable(np.zeros(4096))`` is True.
    """
    v = np.asarray(x).reshape(-1)
    if v.size <= M11_POSITION:
        return True
    return bool(np.abs(v[M11_POSITION]) < M11_TOLERANCE)
