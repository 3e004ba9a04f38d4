"""Project invariants: one-way imports, the README set-up commands, the public API surface."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import syntonic as sn

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "syntonic"

# package -> syntonic packages it must not import
FORBIDDEN = {
    "ir": {"frontend", "passes", "lower", "runtime"},
    "frontend": {"passes", "lower", "runtime"},
    "passes": {"frontend", "runtime"},
    "lower": {"frontend", "runtime"},
    "ad": {"passes", "lower", "runtime"},
    "nn": {"passes", "lower", "runtime"},
    "optim": {"passes", "lower", "runtime"},
    "data": {"frontend", "passes", "lower", "runtime"},
    "gnosis": {"passes", "lower"},
}


def imported_syntonic_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "syntonic" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_imports_flow_one_way():
    problems = []
    for package, forbidden in FORBIDDEN.items():
        for path in (PKG / package).rglob("*.py"):
            bad = imported_syntonic_packages(path) & forbidden
            if bad:
                problems.append(f"{path.relative_to(ROOT)} imports syntonic.{sorted(bad)}")
    assert not problems, problems


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, re.S)
    test_cmd = [b for b in blocks if "pytest" in b]
    demo_cmd = [b for b in blocks if "pip install" in b and "python examples/quickstart.py" in b]
    assert len(test_cmd) == 1 and len(demo_cmd) == 1
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_cmd[0].strip()
    assert (ROOT / "examples" / "quickstart.py").exists()


def test_public_errors_share_one_base():
    for cls in (sn.IRError, sn.TraceError, sn.ShapeError, sn.DTypeError, sn.ControlFlowError,
                sn.UnsupportedError):
        assert issubclass(cls, sn.SyntonicError)


def test_every_registered_op_has_a_reference_rule_and_doc():
    for name, opdef in sn.ir.all_ops().items():
        assert callable(opdef.reference) and callable(opdef.infer), name
        assert opdef.doc, name
