"""Which client software is out of support (I.13, III.2, IV.9): plain decisions.

The gateway asks each occupant for its XEP-0092 software version and reads its
XEP-0115 caps node; this module compares the answer with ``[clients]`` minimums, writes
the content-free notice the person gets, and says whether a message must be refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xmpp_clinic.settings.report import ClientsSettings

OUTDATED_REASON = "client-outdated"  # the reason code in logs, audit and refusals

NOTICE = (
    "Your messaging app or operating system is older than the hospital's minimum "
    "({what}). Please update it; outdated software no longer receives security fixes."
)
REFUSE_NOTICE = NOTICE + " Until then your messages to care threads are refused."
REFUSAL_TEXT = (
    "Your messaging app or operating system is out of support; update it to send to care threads."
)

_NUMBERS = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True)
class ClientSoftware:
    """What a client says about itself (XEP-0092 name, version, os; XEP-0115 node)."""

    name: str = ""
    version: str = ""
    os: str = ""
    caps_node: str = ""


@dataclass(frozen=True)
class ClientCheck:
    """The outcome for one session: outdated or not, and what is below which minimum."""

    outdated: bool
    reason: str = ""  # "client Conversations 2.10.0 < 2.16"

    @property
    def code(self) -> str:
        return OUTDATED_REASON if self.outdated else "ok"


def version_tuple(text: str) -> tuple[int, ...] | None:
    """The first dotted number in ``text`` (``"2.10.0+fdroid"`` -> ``(2, 10, 0)``)."""
    found = _NUMBERS.search(text)
    if found is None:
        return None
    return tuple(int(part) for part in found.group(0).split("."))


def below(version: str, minimum: str) -> bool:
    """``version`` is lower than ``minimum``; an unreadable version counts as lower."""
    have = version_tuple(version)
    need = version_tuple(minimum) or ()
    if have is None:
        return True
    width = max(len(have), len(need))
    return have + (0,) * (width - len(have)) < need + (0,) * (width - len(need))


def _lookup(table: dict[str, str], name: str) -> str | None:
    wanted = name.strip().casefold()
    for key, value in table.items():
        if key.casefold() == wanted:
            return value
    return None


def _os_parts(os_text: str) -> tuple[str, str]:
    """``"Android 13"`` -> ``("Android", "13")``; ``"Windows"`` -> ``("Windows", "")``."""
    found = _NUMBERS.search(os_text)
    if found is None:
        return os_text.strip(), ""
    return os_text[: found.start()].strip(" /-"), found.group(0)


def check_client(software: ClientSoftware, settings: ClientsSettings) -> ClientCheck:
    """Compare one client with the minimums (I.13, III.2); unlisted clients pass."""
    problems: list[str] = []
    minimum = _lookup(settings.minimum, software.name) if software.name else None
    if minimum is not None and below(software.version, minimum):
        problems.append(f"client {software.name} {software.version or '?'} < {minimum}")
    if software.os:
        os_name, os_version = _os_parts(software.os)
        os_minimum = _lookup(settings.os_minimum, os_name) if os_name else None
        if os_minimum is not None and below(os_version, os_minimum):
            problems.append(f"OS {os_name} {os_version or '?'} < {os_minimum}")
    return ClientCheck(outdated=bool(problems), reason="; ".join(problems))


def notice(check: ClientCheck, settings: ClientsSettings) -> str:
    """The sentence the person gets: which software, no message content (I.13)."""
    template = REFUSE_NOTICE if settings.outdated == "refuse" else NOTICE
    return template.format(what=check.reason)


def refuses(check: ClientCheck | None, settings: ClientsSettings) -> bool:
    """Whether a message from this session is refused (``clients.outdated = "refuse"``)."""
    return check is not None and check.outdated and settings.outdated == "refuse"
