"""SlixTest in component mode with the gateway's own ClinicComponent.

slixmpp's ``stream_start(mode="component")`` builds a bare ComponentXMPP; the gateway's
behaviour lives in ClinicComponent and the services attached to it, so this harness
puts a real ClinicComponent on slixmpp's mock transport instead. Literal XML in
(``self.recv``), literal XML out (``self.send``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slixmpp.test import SlixTest
from slixmpp.test.mocksocket import TestSocket
from slixmpp.test.slixtest import TestTransport

from xmpp_clinic.config import Settings, parse_settings
from xmpp_clinic.xmpp.component import ClinicComponent

COMPONENT = "clinic.hospital.test"


def make_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a component on the mock stream; ``sections`` override defaults."""
    data: dict[str, Any] = {
        "xmpp": {
            "component_jid": COMPONENT,
            "secret": "test-secret",
            "user_domains": ["hospital.test"],
        },
        "store": {"url": f"sqlite+aiosqlite:///{tmp / 'unit.db'}"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, tmp)


class ComponentTest(SlixTest):  # type: ignore[misc]
    """Base class: ``self.start(component)`` then ``self.recv(...)`` / ``self.send(...)``."""

    def start(self, component: ClinicComponent) -> ClinicComponent:
        self.mode = "component"
        self.xmpp = component
        component._always_send_everything = True
        component.connection_made(TestTransport(component))
        component.session_bind_event.set()
        component.default_lang = None
        component.peer_default_lang = None
        counter = iter(range(1, 1_000_000))
        component.new_id = lambda: str(next(counter))
        component.data_received(component.stream_header)
        self.wait_for_send_queue()
        assert isinstance(component.socket, TestSocket)
        component.socket.next_sent()  # our stream header
        component.socket.next_sent()  # the handshake
        component.use_message_ids = False
        component.use_presence_ids = False
        return component
