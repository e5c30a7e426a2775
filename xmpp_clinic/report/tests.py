"""Which automated tests prove which requirement, and whether they passed (I.11).

Tests carry ``@pytest.mark.requirement("II.1")``. Two sources, either or both:

- the test sources, read as Python syntax (no import, no pytest needed at run time);
- a JUnit XML file of a test run (``pytest --junitxml``): its outcomes, and the
  ``requirement`` properties the pytest plugin (``report.pytest_plugin``) records.
"""

from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from xmpp_clinic.report.facts import TestFacts
from xmpp_clinic.report.model import Outcome, TestProof

MARKER = "requirement"


def _marker_ids(decorator: ast.expr) -> list[str]:
    """``pytest.mark.requirement("I.4", "I.5")`` -> ``["I.4", "I.5"]``."""
    if not isinstance(decorator, ast.Call):
        return []
    func = decorator.func
    if not (isinstance(func, ast.Attribute) and func.attr == MARKER):
        return []
    return [
        a.value for a in decorator.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
    ]


def _tests_in(tree: ast.Module) -> Iterable[tuple[str, list[str]]]:
    """(test name, requirement IDs) per test function, class markers included."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            yield node.name, [i for d in node.decorator_list for i in _marker_ids(d)]
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            outer = [i for d in node.decorator_list for i in _marker_ids(d)]
            for item in node.body:
                if isinstance(
                    item, ast.FunctionDef | ast.AsyncFunctionDef
                ) and item.name.startswith("test"):
                    ids = outer + [i for d in item.decorator_list for i in _marker_ids(d)]
                    yield f"{node.name}::{item.name}", ids


def scan_markers(root: Path) -> dict[str, list[str]]:
    """Requirement ID -> test node ids (``tests/unit/test_x.py::test_y``) under ``root``."""
    found: dict[str, list[str]] = defaultdict(list)
    base = root.parent
    for path in sorted(root.rglob("test_*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for name, ids in _tests_in(tree):
            for requirement in dict.fromkeys(ids):
                found[requirement].append(f"{path.relative_to(base).as_posix()}::{name}")
    return dict(found)


def _outcome(case: ET.Element) -> Outcome:
    if case.find("failure") is not None or case.find("error") is not None:
        return Outcome.FAILED
    if case.find("skipped") is not None:
        return Outcome.SKIPPED
    return Outcome.PASSED


def _node_id(case: ET.Element) -> str:
    """``tests.unit.test_x`` + ``test_y`` -> ``tests/unit/test_x.py::test_y`` (params kept)."""
    classname = case.get("classname", "")
    name = case.get("name", "")
    parts = classname.split(".")
    # pytest writes test classes as the last dotted part, starting with an upper case letter
    klass = [parts.pop()] if parts and parts[-1][:1].isupper() else []
    return "::".join(["/".join(parts) + ".py", *klass, name])


def read_junit(path: Path) -> tuple[dict[str, Outcome], dict[str, list[str]]]:
    """Outcomes by node id, and requirement IDs recorded as properties, from a JUnit file."""
    root = ET.parse(path).getroot()
    outcomes: dict[str, Outcome] = {}
    marked: dict[str, list[str]] = defaultdict(list)
    for case in root.iter("testcase"):
        node = _node_id(case)
        outcomes[node] = _outcome(case)
        for prop in case.iter("property"):
            if prop.get("name") == MARKER and prop.get("value"):
                marked[str(prop.get("value"))].append(node)
    return outcomes, dict(marked)


def _base_name(node: str) -> str:
    """A parametrised node without its parameters: ``x::test_y[prosody]`` -> ``x::test_y``."""
    return node.split("[", 1)[0]


def collect(tests_root: Path | None, junit: Path | None) -> TestFacts:
    """Tests per requirement with their outcomes in the given run (``not run`` without one)."""
    marked = scan_markers(tests_root) if tests_root is not None and tests_root.is_dir() else {}
    outcomes: dict[str, Outcome] = {}
    summary = ""
    if junit is not None:
        outcomes, from_run = read_junit(junit)
        for requirement, nodes in from_run.items():
            marked.setdefault(requirement, []).extend(_base_name(n) for n in nodes)
        counts = {o: 0 for o in Outcome}
        for outcome in outcomes.values():
            counts[outcome] += 1
        summary = f"{len(outcomes)} tests in {junit.name}: " + ", ".join(
            f"{n} {o.value}" for o, n in counts.items() if n and o is not Outcome.NOT_RUN
        )
    by_base: dict[str, list[Outcome]] = defaultdict(list)
    for node, outcome in outcomes.items():
        by_base[_base_name(node)].append(outcome)
    proofs: dict[str, tuple[TestProof, ...]] = {}
    for requirement, nodes in marked.items():
        proofs[requirement] = tuple(
            TestProof(node, _combined(by_base.get(node, [])))
            for node in sorted(dict.fromkeys(nodes))
        )
    return TestFacts(by_requirement=proofs, run_summary=summary)


def _combined(outcomes: list[Outcome]) -> Outcome:
    """One outcome for all parameters of a test: any failure fails, all skipped is skipped."""
    if not outcomes:
        return Outcome.NOT_RUN
    if Outcome.FAILED in outcomes:
        return Outcome.FAILED
    if all(o is Outcome.SKIPPED for o in outcomes):
        return Outcome.SKIPPED
    return Outcome.PASSED
