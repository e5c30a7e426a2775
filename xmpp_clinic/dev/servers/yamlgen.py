"""A tiny YAML emitter for generated server configuration (no third-party dependency).

Mappings and sequences are written in block style; strings are plain when unambiguous and
JSON-quoted otherwise (a JSON string is a valid YAML double-quoted scalar).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

YamlValue = str | int | float | bool | None | Sequence["YamlValue"] | Mapping[str, "YamlValue"]

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}
_INDENT = "  "


def dump(value: Mapping[str, YamlValue]) -> str:
    """Return ``value`` as a YAML document."""
    return "\n".join(_mapping_lines(value, 0)) + "\n"


def scalar(value: str | int | float | bool | None) -> str:
    """Render a scalar: plain when safe, JSON-quoted otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if _PLAIN.match(value) and value.lower() not in _RESERVED:
        return value
    return json.dumps(value)


def _mapping_lines(value: Mapping[str, YamlValue], depth: int) -> list[str]:
    """Lines of a block mapping at ``depth``."""
    pad = _INDENT * depth
    if not value:
        return [pad + "{}"]
    lines = []
    for key, item in value.items():
        lines.extend(_entry_lines(pad + scalar(key) + ":", item, depth))
    return lines


def _sequence_lines(value: Sequence[YamlValue], depth: int) -> list[str]:
    """Lines of a block sequence at ``depth``."""
    pad = _INDENT * depth
    if not value:
        return [pad + "[]"]
    lines = []
    for item in value:
        lines.extend(_entry_lines(pad + "-", item, depth))
    return lines


def _entry_lines(head: str, item: YamlValue, depth: int) -> list[str]:
    """A key or dash followed by a scalar on the same line or a nested block below."""
    if item is None or isinstance(item, str | int | float | bool):
        return [f"{head} {scalar(item)}"]
    if isinstance(item, Mapping):
        if not item:
            return [f"{head} {{}}"]
        return [head, *_mapping_lines(item, depth + 1)]
    if not item:
        return [f"{head} []"]
    return [head, *_sequence_lines(item, depth + 1)]
