"""The house rules, kept true by walking the imports (DESIGN.md "The house").

- The domain rooms (``policy/``, ``registry/``, ``directory/``, ``archive/``,
  ``retention/``, ``threads/``, ``records/``, ``report/``) and the shared vocabulary
  (``omemo.py``, ``clock.py``, ``jids.py``, ``limits.py``, ``namespaces.py``) know
  nothing of XMPP stanzas: they never import slixmpp, ``xmpp_clinic.xmpp`` or the
  development machinery ``xmpp_clinic.dev``, neither directly nor through a module they
  import. They are tested without a server (II.4: standard XMPP stays at the edge).
- ``store/`` knows nothing above it: of the package it imports only ``store/`` itself
  and ``clock.py``.

Every module file is parsed (``ast``), so imports inside functions and under
``TYPE_CHECKING`` count too; nothing is imported to run the check.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import xmpp_clinic

pytestmark = pytest.mark.requirement("II.4")

PACKAGE = "xmpp_clinic"
ROOT = Path(xmpp_clinic.__file__).parent

PURE = tuple(
    f"{PACKAGE}.{name}"
    for name in (
        "policy", "registry", "directory", "archive", "retention", "threads", "records",
        "report", "completeness", "settings", "omemo", "clock", "jids", "limits",
        "namespaces", "nicks",
    )
)  # fmt: skip
NOT_FOR_PURE = ("slixmpp", "slixmpp_omemo", f"{PACKAGE}.xmpp", f"{PACKAGE}.dev")
STORE = f"{PACKAGE}.store"
STORE_MAY_USE = (STORE, f"{PACKAGE}.clock")


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def module_sources(root: Path = ROOT, package: str = PACKAGE) -> dict[str, str]:
    """Every module of the package: dotted name -> source text (``__init__`` = package)."""
    sources: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources


def imports_of(module: str, source: str, *, is_package: bool = False) -> set[str]:
    """The dotted names ``module`` imports; ``from a import b`` yields ``a`` and ``a.b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def violations(sources: Mapping[str, str], packages: Iterable[str] = ()) -> list[str]:
    """Each broken rule as ``module: what it reaches`` (through which module, if not direct).

    ``sources`` maps module names to source text; ``packages`` names those that are
    packages (their ``__init__``), for relative imports.
    """
    package_names = set(packages) | {
        name for name in sources if any(other.startswith(name + ".") for other in sources)
    }
    direct = {
        name: imports_of(name, text, is_package=name in package_names)
        for name, text in sources.items()
    }
    problems: list[str] = []
    for name in sorted(sources):
        if _within(name, (STORE,)):
            problems += [
                f"{name}: imports {target} (store/ knows nothing above it)"
                for target in sorted(direct[name])
                if _within(target, (PACKAGE,)) and not _within(target, STORE_MAY_USE)
            ]
        if _within(name, PURE):
            problems += [
                f"{name}: reaches {target}" + (f" through {via}" if via != name else "")
                for target, via in sorted(_reach(name, direct).items())
                if _within(target, NOT_FOR_PURE)
            ]
    return problems


def _reach(start: str, direct: Mapping[str, set[str]]) -> dict[str, str]:
    """Every name ``start`` imports directly or through package modules -> the importer."""
    reached: dict[str, str] = {}
    pending = [start]
    seen = {start}
    while pending:
        current = pending.pop()
        for target in direct.get(current, ()):
            reached.setdefault(target, current)
            if target in direct and target not in seen:
                seen.add(target)
                pending.append(target)
    return reached


def test_the_package_keeps_the_house_rules() -> None:
    sources = module_sources()
    assert f"{PACKAGE}.policy.pipeline" in sources and f"{STORE}.engine" in sources
    assert violations(sources) == []
    # The walk sees real imports: the XMPP edge does reach slixmpp, the pure rooms do not.
    direct = {name: imports_of(name, text) for name, text in sources.items()}
    assert "slixmpp" in _reach(f"{PACKAGE}.xmpp.relay", direct)
    assert f"{PACKAGE}.omemo" in _reach(f"{PACKAGE}.policy.pipeline", direct)


def test_the_check_finds_each_kind_of_violation() -> None:
    """A positive control: the checker must see what it is there to forbid."""
    sources = {
        f"{PACKAGE}.policy": "",
        f"{PACKAGE}.policy.bad": "import slixmpp\n",
        f"{PACKAGE}.policy.late": "def f():\n    from xmpp_clinic.xmpp.relay import Relay\n",
        f"{PACKAGE}.registry": "",
        f"{PACKAGE}.registry.service": "from xmpp_clinic.config import Settings\n",
        f"{PACKAGE}.config": "from xmpp_clinic.dev import demo\n",
        f"{PACKAGE}.threads": "from . import helper\n",
        f"{PACKAGE}.threads.helper": "from slixmpp_omemo import XEP_0384\n",
        f"{PACKAGE}.store": "",
        f"{PACKAGE}.store.engine": "from xmpp_clinic.clock import utcnow\nfrom . import base\n",
        f"{PACKAGE}.store.base": "from ..threads.model import ThreadInfo\n",
        f"{PACKAGE}.omemo": "import xml.etree.ElementTree as ET\n",
    }
    found = violations(sources)
    assert found == [
        f"{PACKAGE}.policy.bad: reaches slixmpp",
        f"{PACKAGE}.policy.late: reaches {PACKAGE}.xmpp.relay",
        f"{PACKAGE}.policy.late: reaches {PACKAGE}.xmpp.relay.Relay",
        f"{PACKAGE}.registry.service: reaches {PACKAGE}.dev through {PACKAGE}.config",
        f"{PACKAGE}.registry.service: reaches {PACKAGE}.dev.demo through {PACKAGE}.config",
        f"{PACKAGE}.store.base: imports {PACKAGE}.threads.model (store/ knows nothing above it)",
        f"{PACKAGE}.store.base: imports {PACKAGE}.threads.model.ThreadInfo"
        " (store/ knows nothing above it)",
        f"{PACKAGE}.threads: reaches slixmpp_omemo through {PACKAGE}.threads.helper",
        f"{PACKAGE}.threads: reaches slixmpp_omemo.XEP_0384 through {PACKAGE}.threads.helper",
        f"{PACKAGE}.threads.helper: reaches slixmpp_omemo",
        f"{PACKAGE}.threads.helper: reaches slixmpp_omemo.XEP_0384",
    ]
