"""Server snippets for attaching the gateway, from the templates in plugins/ and ejabberd/."""

from __future__ import annotations

import sys
from pathlib import Path
from string import Template

_REPO = Path(__file__).resolve().parent.parent
_SHARE = Path(sys.prefix) / "share" / "xmpp-clinic"

PROSODY_TEMPLATE = ("plugins", "prosody-component.cfg.lua.tmpl")
EJABBERD_TEMPLATE = ("ejabberd", "ejabberd-component.yml.tmpl")


def _template(folder: str, name: str) -> Template:
    for root in (_REPO, _SHARE):
        path = root / folder / name
        if path.is_file():
            return Template(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"template {folder}/{name} not found; reinstall xmpp-clinic")


def render(which: tuple[str, str], **values: str) -> str:
    """Fill a server template; unknown placeholders are an error, not silent blanks."""
    return _template(*which).substitute(values)
