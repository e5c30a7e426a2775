"""The privacy notice names the documentation member (I.1, I.6).

Anyone who reads the component's privacy notice (XEP-0128 extended disco#info) learns
that documented threads include the documentation service and which JID it is, as
they see it in those threads' member lists.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from xmpp_clinic.xmpp.component import ClinicComponent, privacy_form

pytestmark = pytest.mark.requirement("I.1", "I.6")


def test_privacy_form_names_the_records_member(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, records={"localpart": "patient-record"})
    fields = privacy_form(settings).get_values()
    assert fields["documentation-service"] == f"patient-record@{COMPONENT}"
    field = privacy_form(settings).get_fields()["documentation-service"]
    assert field["label"] == "Documented threads include the documentation service"


class TestPrivacyNoticeOnTheWire(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def test_disco_info_names_the_records_member(self) -> None:
        self.recv(
            f"""<iq type="get" id="d1" from="alice@hospital.test/phone" to="{COMPONENT}">
                  <query xmlns="http://jabber.org/protocol/disco#info"/>
                </iq>"""
        )
        sent = self.next_sent()
        form = sent.find(".//{jabber:x:data}field[@var='documentation-service']")
        assert form is not None
        assert f"records@{COMPONENT}" in "".join(form.itertext())
