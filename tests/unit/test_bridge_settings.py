"""``[bridge]`` is checked when the config loads; the bridge keeps to its room (I.6, I.12)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.test_import_rules import imports_of, module_sources
from xmpp_clinic.settings.bridge import BridgeSettings, host_port

pytestmark = pytest.mark.requirement("I.6", "I.12")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"listen": "8787"}, "listen"),
        ({"adt": {"listen": "127.0.0.1:99999"}}, "adt.listen"),
        ({"hl7": {"port": 0}}, "hl7.port"),
        ({"page_limit": 0}, "page_limit"),
        ({"tls_client_ca": "ca.pem"}, "tls_client_ca"),
        ({"hl7": {"hosts": "his"}}, "hl7.hosts"),
    ],
)
def test_wrong_bridge_keys_are_refused(data: dict[str, object], key: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BridgeSettings.model_validate(data)
    assert key.split(".")[-1] in str(caught.value)


def test_host_port_reads_ipv6_and_any_port() -> None:
    assert host_port("[::1]:2575") == ("::1", 2575)
    assert host_port("127.0.0.1:0") == ("127.0.0.1", 0)


def test_bridge_never_imports_the_xmpp_layer() -> None:
    """DESIGN.md: bridge/ reads through archive/ and records, never through xmpp/."""
    sources = module_sources()
    for module, source in sources.items():
        if module.startswith("xmpp_clinic.bridge"):
            bad = {
                name
                for name in imports_of(module, source)
                if name.startswith(("xmpp_clinic.xmpp", "slixmpp", "xmpp_clinic.dev"))
            }
            assert not bad, f"{module} imports {bad}"
