"""The XMPP server's side of the controls, read from its config file (IV.2, IV.8, I.7).

The gateway cannot see inside the server; what the operator's config file says is the
next best evidence: is the confinement module loaded (users cannot talk around the
gateway), is XEP-0356 privilege granted to the gateway, does the server expire its own
archive and uploads. Prosody's Lua and ejabberd's YAML are read as text: only the few
settings named here matter, and comments are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from xmpp_clinic.report.facts import ServerFacts

CONFINE_MODULE = "clinic_confine"


def _strip(text: str, marker: str) -> str:
    """The file without comments (``--`` for Lua, ``#`` for YAML), line by line."""
    return "\n".join(line.split(marker, 1)[0] for line in text.splitlines())


def _lua_value(text: str, key: str) -> str | None:
    """The value of ``key = "..."``; as in Lua, the last assignment wins."""
    found = re.findall(rf"^\s*{key}\s*=\s*\"?([^\"\n;]+)\"?", text, re.MULTILINE)
    return found[-1].strip() if found else None


def _prosody_modules(text: str) -> set[str]:
    found: set[str] = set()
    for block in re.finditer(r"modules_enabled\s*=\s*\{([^}]*)\}", text):
        found.update(re.findall(r"[\"']([\w-]+)[\"']", block.group(1)))
    return found


def read_prosody(text: str, component_jid: str) -> ServerFacts:
    """Facts from a Prosody config (Lua)."""
    code = _strip(text, "--")
    modules = _prosody_modules(code)
    quoted = re.compile(rf"[\"']{re.escape(component_jid)}[\"']")
    privileged = "privileged_entities" in code and quoted.search(code) is not None
    expiry = _lua_value(code, "archive_expires_after")
    upload = _lua_value(code, "http_file_share_expires_after") or _lua_value(
        code, "http_upload_expire_after"
    )
    return ServerFacts(
        kind="prosody",
        confinement=CONFINE_MODULE in modules,
        privilege="privilege" in modules and privileged,
        mam_expiry=None if expiry in (None, "never") else expiry,
        upload_expiry=_seconds_as_days(upload),
    )


def _seconds_as_days(value: str | None) -> str | None:
    """Prosody's upload expiry is in seconds: ``2592000`` reads as ``30 days``."""
    if value is None or not value.isdigit():
        return value
    seconds = int(value)
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} seconds"


def _yaml_key(text: str, key: str) -> bool:
    return re.search(rf"^\s+{key}\s*:", text, re.MULTILINE) is not None


def read_ejabberd(text: str) -> ServerFacts:
    """Facts from an ejabberd config (YAML).

    ejabberd 23.01 has no archive expiry option: the gateway's retention purge calls
    ``delete_old_mam_messages`` instead, so ``mam_expiry`` names that.
    """
    code = _strip(text, "#")
    days = re.search(r"max_days\s*:\s*(\d+)", code)
    mam = _yaml_key(code, "mod_mam")
    return ServerFacts(
        kind="ejabberd",
        confinement=_yaml_key(code, "mod_" + CONFINE_MODULE),
        privilege=_yaml_key(code, "mod_privilege"),
        mam_expiry="no ejabberd option; purged with delete_old_mam_messages" if mam else None,
        upload_expiry=f"{days.group(1)} days" if days else None,
    )


def read_server_config(path: Path, component_jid: str) -> ServerFacts:
    """Facts from the server config at ``path``; Prosody or ejabberd by its content."""
    text = path.read_text(encoding="utf-8", errors="replace")
    looks_yaml = path.suffix in (".yml", ".yaml") or re.search(r"^hosts\s*:", text, re.MULTILINE)
    facts = read_ejabberd(text) if looks_yaml else read_prosody(text, component_jid)
    return ServerFacts(
        source=str(path),
        kind=facts.kind,
        confinement=facts.confinement,
        privilege=facts.privilege,
        mam_expiry=facts.mam_expiry,
        upload_expiry=facts.upload_expiry,
    )
