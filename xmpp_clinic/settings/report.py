"""``[clients]`` and ``[report]``: client versions and the compliance report (I.11, I.13)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from xmpp_clinic.settings.base import FilePath, Section

_VERSION = re.compile(r"\d+(\.\d+){0,3}")


def _version(raw: str) -> str:
    """A dotted version such as ``2.16`` or ``1.9.3``; anything else is a typo."""
    if not _VERSION.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a version; write digits and dots, e.g. '2.16'")
    return raw


Version = Annotated[str, AfterValidator(_version)]
Name = Annotated[str, Field(min_length=1, max_length=64)]


class ClientsSettings(Section):
    """Minimum client versions and what happens to outdated ones (I.13, III.2, IV.9).

    ``minimum`` maps a client's XEP-0092 name to the lowest version still receiving
    security updates; ``os_minimum`` does the same for the operating system it reports
    (``Android = "12"``). Names are compared without case. Clients not listed pass.
    """

    check_versions: bool = True
    outdated: Literal["notify", "refuse"] = "notify"
    minimum: dict[Name, Version] = Field(
        default_factory=lambda: {"Conversations": "2.16", "Gajim": "1.9"}
    )
    os_minimum: dict[Name, Version] = Field(default_factory=dict)
    ask_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0


class ReportSettings(Section):
    """The compliance report saved on a schedule (IV.4).

    ``save_every_hours`` 0 saves none from the gateway (``report --save`` still works);
    ``server_config`` and ``test_results`` are read into every saved report.
    """

    save_every_hours: Annotated[int, Field(ge=0, le=24 * 366)] = 0
    server_config: FilePath | None = None
    test_results: FilePath | None = None
