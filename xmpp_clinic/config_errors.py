"""One line per config problem: the key, what is wrong, and the fix (I.12).

Pydantic reports where validation failed; this module turns the first failure into
words an operator can act on: which key, the value it got in TOML spelling, the value
it wants (with the key's default as an example), and for an unknown key the known key
it most likely meant, also when it sits in the wrong section.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, PydanticUndefined


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"config error at '{key}': {problem}; fix: {fix}")


# What a value of each kind looks like in TOML, for the fix.
_WANTED = {
    "int_type": "a whole number without quotes or decimal point",
    "float_type": "a number without quotes",
    "bool_type": "true or false, without quotes",
    "string_type": "text in double quotes",
    "list_type": 'a list such as ["a", "b"]',
    "path_type": "a path in double quotes",
    "model_type": "a [section] of keys",
    "dict_type": "a [section] of keys",
}

# How to write a valid value where the check is more than a type.
_VALUE_FIXES = {
    "xmpp.component_jid": "the gateway's own domain, such as clinic.hospital.example",
    "xmpp.user_domains": "the hospital's user domains, such as hospital.example",
    "xmpp.admins": "bare JIDs of IT admins, such as it-desk@hospital.example",
}


def _key_of(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


def _toml(value: Any) -> str:
    """A value as it was written in the file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def _sections(model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield name, annotation


def _keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _field(model: type[BaseModel], loc: tuple[int | str, ...]) -> Any:
    """The model field at ``loc`` (ignoring list indexes), or None."""
    current: Any = model
    field = None
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fields = current.model_fields
        field = fields.get(str(part)) or next(
            (f for f in fields.values() if f.alias == str(part)), None
        )
        if field is None:
            return None
        current = field.annotation
    return field


def _ends_with_stem(name: str, key: str) -> bool:
    """``component_secret`` ends with the stem of ``secret`` and ``secret_file``."""
    stem = key.split("_")[0]
    return len(stem) > 3 and name.endswith(f"_{stem}")


def _suggest(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The fix for an unknown key: the key it resembles here, or the section it belongs to."""
    name = str(loc[-1])
    sections = dict(_sections(model))
    if len(loc) == 2 and str(loc[0]) in sections:
        here = _keys(sections[str(loc[0])])
        close = difflib.get_close_matches(name, here, n=1)
        if close:
            return f"did you mean '{close[0]}'?"
    elif len(loc) == 1:
        close = difflib.get_close_matches(name, list(sections), n=1, cutoff=0.75)
        if close:
            return f"did you mean the section [{close[0]}]?"
    # The key exists in another section, or the name ends with a known key
    # (`component_secret` -> secret, secret_file): name the section and the key.
    places = [
        f"[{section}] {key}"
        for section, sub in sections.items()
        for key in _keys(sub)
        if name in (key, f"{section}_{key}") or _ends_with_stem(name, key)
    ]
    if places:
        return "did you mean " + " or ".join(places[:3]) + "?"
    known = _keys(sections[str(loc[0])]) if len(loc) == 2 else list(sections)
    return "remove it; known keys here: " + ", ".join(known)


def _default_example(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    field = _field(model, loc)
    if field is None or field.default in (None, PydanticUndefined):
        return ""
    return f", e.g. {loc[-1]} = {_toml(field.default)}"


def explain(exc: ValidationError, model: type[BaseModel]) -> ConfigError:
    """The first validation failure as a :class:`ConfigError`."""
    err: ErrorDetails = exc.errors()[0]
    loc = tuple(err["loc"])
    key = _key_of(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        return ConfigError(key, "unknown key", _suggest(model, loc))
    if kind == "missing":
        if len(loc) == 1:
            return ConfigError(key, "required section is missing", f"add a [{key}] section")
        return ConfigError(key, "required key is missing", f"add {loc[-1]} under [{loc[0]}]")
    got = _toml(err["input"])
    if kind in _WANTED:
        wanted = _WANTED[kind]
        return ConfigError(key, f"got {got}", f"write {wanted}{_default_example(model, loc[:2])}")
    msg = str(err["msg"])
    if kind == "value_error":  # our own checks (domains, JIDs) say what is wrong
        fix = _VALUE_FIXES.get(_key_of(tuple(p for p in loc if isinstance(p, str))))
        problem = msg.removeprefix("Value error, ")
        return ConfigError(key, problem, f"use {fix}" if fix else f"set '{key}' to a valid value")
    wanted = msg.removeprefix("Input should be ")
    if kind == "literal_error":
        return ConfigError(key, f"got {got}", f"write one of {wanted}")
    if wanted != msg:  # ranges: "greater than or equal to 1"
        return ConfigError(key, f"got {got}", f"write a value {wanted}")
    return ConfigError(key, f"{msg}, got {got}", f"set '{key}' to a valid value")
