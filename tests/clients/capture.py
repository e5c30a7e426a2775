"""The gateway's side of a stanza capture: every stanza its component received or sent.

Test-only evidence for what a real client met (the XML a fix is written against). It
holds test data only (made-up messages, throwaway keys) and lives in the test's temporary
folder; the gateway's own logs stay free of content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slixmpp import ComponentXMPP

IN, OUT = "IN", "OUT"


@dataclass
class StanzaCapture:
    """Attach before the component connects: ``StanzaCapture.attach(component)``."""

    records: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def attach(cls, component: ComponentXMPP) -> StanzaCapture:
        capture = cls()

        def received(stanza: Any) -> Any:
            capture.records.append((IN, str(stanza)))
            return stanza

        component.add_filter("in", received)
        # The gateway sends prepared XML as text, which slixmpp's "out" filters never see;
        # send_raw is where both kinds meet.
        send_raw = component.send_raw

        def sent(data: str | bytes) -> None:
            text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
            capture.records.append((OUT, text))
            send_raw(data)

        component.send_raw = sent  # type: ignore[method-assign]
        return capture

    def find(self, direction: str, *parts: str) -> list[str]:
        """Stanzas in ``direction`` (IN or OUT) that contain every one of ``parts``."""
        return [
            xml for way, xml in self.records if way == direction and all(p in xml for p in parts)
        ]

    def by_id(self, stanza_id: str) -> list[tuple[str, str]]:
        """Every stanza, either way, whose ``id`` attribute is ``stanza_id``."""
        wanted = re.compile(rf"""^<\w+[^>]*\sid=["']{re.escape(stanza_id)}["']""")
        return [(way, xml) for way, xml in self.records if wanted.search(xml)]

    def save(self, path: Path) -> None:
        """Write the capture as ``--- IN|OUT`` records (kept only in the test's tmp folder)."""
        path.write_text(
            "".join(f"--- {way}\n{xml}\n" for way, xml in self.records), encoding="utf-8"
        )
