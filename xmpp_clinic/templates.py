"""Server snippets for attaching the gateway, from the templates in plugins/ and ejabberd/.

The snippets also set the server's own expiry (I.7, IV.8): the server keeps copies of
what passes through it (its MAM archive, the files of its upload service), and those
copies must not outlive the hospital's retention. :class:`ServerExpiry` turns the
config's ``retention.messages_days`` into each server's setting; the dev servers use
the same class, so tests run the servers as the snippets configure them.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

_REPO = Path(__file__).resolve().parent.parent
_SHARE = Path(sys.prefix) / "share" / "xmpp-clinic"

PROSODY_TEMPLATE = ("plugins", "prosody-component.cfg.lua.tmpl")
EJABBERD_TEMPLATE = ("ejabberd", "ejabberd-component.yml.tmpl")

SECONDS_PER_DAY = 86400
MINUTES_PER_DAY = 1440
UPLOAD_PREFIX = "upload."  # the upload service's JID: upload.<user domain> by default


@dataclass(frozen=True)
class ServerExpiry:
    """How long the server keeps its own copies: the gateway's message retention.

    The servers purge in daily jobs (Prosody's mod_mam and mod_http_file_share cron
    tasks, ejabberd's mod_http_upload_quota and the ``delete_old_mam_messages`` timer),
    so a day is their finest granularity: a period in minutes is rounded UP to whole
    days (never down: a server copy must not vanish before the gateway's own record),
    and a copy may live up to one day longer than the period, until the next daily run.
    """

    days: int

    def __post_init__(self) -> None:
        """A server expiry below one day cannot be configured (and would be a mistake)."""
        if self.days < 1:
            raise ValueError(f"server expiry must be at least one day, not {self.days}")

    @classmethod
    def from_minutes(cls, minutes: int) -> ServerExpiry:
        """The expiry for a retention of ``minutes``, rounded up to whole days."""
        return cls(max(1, math.ceil(minutes / MINUTES_PER_DAY)))

    @property
    def archive_expires_after(self) -> str:
        """Prosody's ``archive_expires_after`` (mod_mam): ``"<days>d"``."""
        return f"{self.days}d"

    @property
    def upload_seconds(self) -> int:
        """Prosody's ``http_file_share_expires_after``: the period in seconds."""
        return self.days * SECONDS_PER_DAY

    def values(self) -> dict[str, str]:
        """The template placeholders this expiry fills."""
        return {
            "messages_days": str(self.days),
            "archive_expires_after": self.archive_expires_after,
            "upload_expires_seconds": str(self.upload_seconds),
            "upload_max_days": str(self.days),
            "mam_delete_days": str(self.days),
        }


def upload_jid(domain: str) -> str:
    """The default JID of the upload service of the user domain ``domain``."""
    return UPLOAD_PREFIX + domain


def _template(folder: str, name: str) -> Template:
    for root in (_REPO, _SHARE):
        path = root / folder / name
        if path.is_file():
            return Template(path.read_text(encoding="utf-8"))
    raise FileNotFoundError(f"template {folder}/{name} not found; reinstall xmpp-clinic")


def render(which: tuple[str, str], **values: str) -> str:
    """Fill a server template; unknown placeholders are an error, not silent blanks."""
    return _template(*which).substitute(values)


def block(text: str, name: str, comment: str) -> str:
    """The lines between ``<comment> <name>-begin`` and ``<comment> <name>-end`` of a
    rendered snippet, with one leading ``<comment> `` removed where a line has it (the
    commented-out parts an operator uncomments). Raises ``ValueError`` when absent."""
    begin, end = f"{comment} {name}-begin\n", f"{comment} {name}-end"
    if begin not in text or end not in text:
        raise ValueError(f"the snippet has no {name} block")
    inner = text.split(begin, 1)[1].split(end, 1)[0]
    return "".join(
        line.removeprefix(comment + " ") + "\n" for line in inner.splitlines() if line.strip()
    )
