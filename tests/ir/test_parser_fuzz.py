"""The parser rejects bad text with IRError only, always saying where (``source:line:col``).

Fuzzed with arbitrary text and with mutations of valid printed graphs; plus one
hand-written example per kind of mistake, checking the message says what is wrong.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syntonic.ir import Graph, IRError, parse, verify
from tests.strategies import graphs, ir_settings

WHERE = re.compile(r"^(?P<source>.*?):(?P<line>\d+):(?P<col>\d+): \S")


def check_parse(text: str, source: str = "<text>") -> Graph | None:
    """Parse `text`: either a valid graph that prints canonically, or an IRError with a
    position inside the text. Anything else propagates and fails the test."""
    try:
        g = parse(text, source)
    except IRError as err:
        message = str(err)
        m = WHERE.match(message)
        assert m is not None, f"no {source}:line:col in {message!r}"
        assert m["source"] == source
        line, col = int(m["line"]), int(m["col"])
        assert 1 <= line <= text.count("\n") + 1, message
        assert col >= 1, message
        return None
    verify(g)
    canonical = str(g)
    assert str(parse(canonical)) == canonical
    return g


@settings(ir_settings, max_examples=300)
@given(text=st.text())
def test_arbitrary_text(text: str) -> None:
    check_parse(text)


# Pieces of IR syntax, so insertions make near-miss programs rather than noise. The long
# digit strings exceed Python's int/float conversion limits.
FRAGMENTS = [
    "{", "}", "(", ")", "[", "]", "<", ">", ",", ":", "=", "->", "%0", "%1", "%x", "%", "@f",
    "@", "func", "return", "dense", "dense<", "loc", "loc(\"a.py\":1)", '"', "\\", "f32[2]",
    "i64[]", "bool[0]", "f16[", "f32[,]", "nan", "-inf", "inf", "-0.0", "1e400", "1e-400",
    "9" * 400, "9" * 5000, "f32[" + "9" * 30 + "]", "none", "true", "false", "exp", "constant",
    "harmonize", "broadcast", "axis", "strength", "shape", "value", "dtype", "f64", "\n", " ",
    "//", "-", "+", "0.5", "3", "-1", "\t", "é", "\x00", "{value=dense<1.0>}",
]
_TOKEN = re.compile(r'\s+|"(?:\\.|[^"\\\n])*"|[%@]?\w+(?:\[[\d,]*\])?|\S')
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[+-]?\d+)?|nan|-?inf")
# Replacements for a number anywhere (a dimension, an attribute, a dense element, a line).
NASTY_NUMBERS = [
    "0", "-1", "1", "2", "1.5", "-0.0", "nan", "inf", "-inf", "1e400", "5e-324", "2147483648",
    "9223372036854775808", "-9223372036854775809", "100000000000000000000", "10000000000000",
    "9" * 400, "9" * 5000, "1" + "0" * 4400 + ".0",
]


@st.composite
def mutated_programs(draw) -> str:  # noqa: ANN001
    text = str(draw(graphs(max_ops=4)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["delete", "insert", "swap", "truncate", "replace", "renumber"])
        )
        n = len(text)
        if kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, min(n, i + 12)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            i = draw(st.integers(0, n))
            piece = draw(st.sampled_from(FRAGMENTS) | st.text(max_size=3))
            text = text[:i] + piece + text[i:]
        elif kind == "swap":
            tokens = _TOKEN.findall(text)
            if len(tokens) >= 2:
                i = draw(st.integers(0, len(tokens) - 1))
                j = draw(st.integers(0, len(tokens) - 1))
                tokens[i], tokens[j] = tokens[j], tokens[i]
                text = "".join(tokens)
        elif kind == "truncate":
            text = text[: draw(st.integers(0, n))]
        elif kind == "renumber":
            spans = [m.span() for m in _NUMBER.finditer(text)]
            if spans:
                i, j = draw(st.sampled_from(spans))
                text = text[:i] + draw(st.sampled_from(NASTY_NUMBERS)) + text[j:]
        else:
            tokens = _TOKEN.findall(text)
            if tokens:
                i = draw(st.integers(0, len(tokens) - 1))
                tokens[i] = draw(st.sampled_from(FRAGMENTS))
                text = "".join(tokens)
    return text


@settings(ir_settings, max_examples=400)
@given(text=mutated_programs())
def test_mutated_programs(text: str) -> None:
    check_parse(text)


@settings(ir_settings, max_examples=50)
@given(text=mutated_programs(), source=st.sampled_from(["model.ir", "dir/f.ir", "x:y"]))
def test_errors_name_the_source(text: str, source: str) -> None:
    check_parse(text, source)


# ------------------------------------------------------------ specific mistakes

BASE = """\
func @f(%x: f32[4], %m: bool[4]) -> (f32[4]) {
  %0 = exp %x : f32[4]
  %1 = harmonize %0 {strength=0.5} : f32[4]
  return %1
}
"""


def test_base_program_is_valid() -> None:
    assert check_parse(BASE) is not None


def _error(text: str) -> tuple[int, int, str]:
    with pytest.raises(IRError) as info:
        parse(text)
    message = str(info.value)
    m = WHERE.match(message)
    assert m is not None, message
    return int(m["line"]), int(m["col"]), message


def _col(text: str, line: int, needle: str) -> int:
    return text.splitlines()[line - 1].index(needle) + 1


CASES = {
    # name: (old, new, line of the error, needle whose column is reported or None, words)
    "unknown op": ("= exp %x", "= frobnicate %x", 2, "frobnicate", ["unknown op", "frobnicate"]),
    "undefined value": ("exp %x", "exp %y", 2, "%y", ["%y", "before it is defined"]),
    "value defined twice": ("%1 = harmonize", "%0 = harmonize", 3, "%0", ["%0", "defined twice"]),
    "wrong result type": ("exp %x : f32[4]", "exp %x : f64[4]", 2, None,
                          ["exp", "declared", "f64[4]", "produces f32[4]"]),
    "wrong attribute type": ("strength=0.5", "strength=true", 3, None,
                             ["harmonize", "strength", "expected a number"]),
    "unknown attribute": ("strength=0.5", "strenght=0.5", 3, None,
                          ["harmonize", "no attribute", "strenght", "strength"]),
    "missing required attribute": ("%1 = harmonize %0 {strength=0.5} : f32[4]",
                                   "%1 = broadcast %0 : f32[2,4]", 3, None,
                                   ["broadcast", "needs the attribute", "shape"]),
    "dense element count": ("%1 = harmonize %0 {strength=0.5} : f32[4]",
                            "%1 = constant {value=dense<[1.0,2.0,3.0]>} : f32[4]", 3, None,
                            ["dense", "3 elements", "f32[4]", "4"]),
    "bad dtype attribute": ("%1 = harmonize %0 {strength=0.5} : f32[4]",
                            "%1 = cast %0 {dtype=f65} : f32[4]", 3, None,
                            ["unknown dtype", "f65"]),
    "bad dtype in a type": ("%m: bool[4]", "%m: f65[4]", 1, "f65", ["unexpected", "f65"]),
    "int where float needed in dense": (
        "%1 = harmonize %0 {strength=0.5} : f32[4]",
        "%1 = constant {value=dense<[1,2,true,4]>} : f32[4]", 3, None, ["must be numbers"]),
    "int constant out of range": (
        "%1 = harmonize %0 {strength=0.5} : f32[4]",
        "%1 = constant {value=dense<4294967296>} : i32[4]", 3, None, ["does not fit in i32"]),
    "return type mismatch": ("-> (f32[4])", "-> (f64[4])", 4, None, ["return types", "f64[4]"]),
    "wrong operand count": ("exp %x :", "exp %x, %x :", 2, None, ["exp", "takes 1", "got 2"]),
    "bad loc escape": ("%x : f32[4]\n", '%x : f32[4] loc("a\\q.py":3)\n', 2, None, ["loc"]),
    "nested dense": ("%1 = harmonize %0 {strength=0.5} : f32[4]",
                     "%1 = constant {value=dense<[[1.0,2.0],[3.0,4.0]]>} : f32[4]", 3, None,
                     ["flat list"]),
    "huge integer attribute": ("strength=0.5", "strength=" + "9" * 5000, 3, "9999",
                               ["too many digits"]),
    "integer attribute beyond float range": ("strength=0.5", "strength=" + "9" * 400, 3, None,
                                             ["strength", "too large for a float"]),
    "huge dimension": ("%x: f32[4]", "%x: f32[" + "9" * 5000 + "]", 1, "f32[9",
                       ["f32[", "too many digits"]),
    "dense integer beyond float range": (
        "%1 = harmonize %0 {strength=0.5} : f32[4]",
        "%1 = constant {value=dense<" + "9" * 400 + ">} : f32[4]", 3, None,
        ["constant", "too large for a float"]),
    "splat too large to allocate": (
        "%1 = harmonize %0 {strength=0.5} : f32[4]",
        "%1 = constant {value=dense<1.0>} : f32[100000000000000000000]", 3, None,
        ["constant", "f32[100000000000000000000]"]),
    "splat beyond memory": (
        "%1 = harmonize %0 {strength=0.5} : f32[4]",
        "%1 = constant {value=dense<1.0>} : f64[10000000000000]", 3, None,
        ["constant", "f64[10000000000000]"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_specific_mistakes(case: str) -> None:
    old, new, line, needle, words = CASES[case]
    assert old in BASE
    text = BASE.replace(old, new, 1)
    got_line, got_col, message = _error(text)
    assert got_line == line, message
    if needle is not None:
        assert got_col == _col(text, line, needle), message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_unterminated_function() -> None:
    text = BASE.rstrip().removesuffix("}")
    line, _, message = _error(text)
    assert line == 4
    assert "end of text" in message


@pytest.mark.parametrize("text", ["", "   \n", "// only a comment\n"])
def test_empty_text(text: str) -> None:
    line, col, message = _error(text)
    assert (line, col) >= (1, 1)
    assert "end of text" in message


def test_second_function_is_rejected() -> None:
    _error(BASE + BASE)


def test_non_string_input() -> None:
    with pytest.raises(IRError):
        parse(b"func @f() -> () { return }")  # type: ignore[arg-type]


def test_deep_nesting_is_an_ir_error() -> None:
    text = BASE.replace("strength=0.5", "strength=" + "[" * 5000 + "]" * 5000)
    _error(text)
