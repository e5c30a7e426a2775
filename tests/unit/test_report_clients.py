"""Client versions against ``[clients]`` minimums: outdated, notice, refusal (I.13, III.2)."""

from __future__ import annotations

import pytest

from xmpp_clinic.report.clients import (
    ClientSoftware,
    below,
    check_client,
    notice,
    refuses,
    version_tuple,
)
from xmpp_clinic.settings.report import ClientsSettings

NOTIFY = ClientsSettings()
REFUSE = ClientsSettings(outdated="refuse", os_minimum={"Android": "12"})


@pytest.mark.requirement("I.13", "IV.9")
def test_conversations_2_10_is_outdated_and_2_16_is_not() -> None:
    old = check_client(ClientSoftware("Conversations", "2.10.0"), NOTIFY)
    assert old.outdated and old.reason == "client Conversations 2.10.0 < 2.16"
    assert old.code == "client-outdated"
    assert not check_client(ClientSoftware("Conversations", "2.16.1+fdroid"), NOTIFY).outdated
    assert not check_client(ClientSoftware("conversations", "2.16"), NOTIFY).outdated


@pytest.mark.requirement("I.13")
def test_an_unlisted_client_passes_and_an_unreadable_version_is_outdated() -> None:
    assert not check_client(ClientSoftware("Dino", "0.1"), NOTIFY).outdated
    assert check_client(ClientSoftware("Gajim", "unknown"), NOTIFY).outdated


@pytest.mark.requirement("III.2")
def test_an_os_below_its_minimum_is_outdated() -> None:
    found = check_client(ClientSoftware("Conversations", "2.17", "Android 11"), REFUSE)
    assert found.outdated and found.reason == "OS Android 11 < 12"
    assert not check_client(ClientSoftware("Conversations", "2.17", "Android 14"), REFUSE).outdated
    assert not check_client(ClientSoftware("Gajim", "1.9", "Linux"), REFUSE).outdated


@pytest.mark.requirement("I.13")
def test_the_notice_names_the_software_and_nothing_else() -> None:
    found = check_client(ClientSoftware("Conversations", "2.10.0"), NOTIFY)
    text = notice(found, NOTIFY)
    assert "Conversations 2.10.0 < 2.16" in text and "refused" not in text
    assert "refused" in notice(found, REFUSE)


@pytest.mark.requirement("I.13", "IV.9")
def test_only_refuse_mode_refuses_and_only_outdated_sessions() -> None:
    old = check_client(ClientSoftware("Conversations", "2.10.0"), REFUSE)
    new = check_client(ClientSoftware("Conversations", "2.16.0"), REFUSE)
    assert refuses(old, REFUSE) and not refuses(new, REFUSE)
    assert not refuses(old, NOTIFY) and not refuses(None, REFUSE)


def test_versions_compare_as_numbers() -> None:
    assert version_tuple("v1.9.3-beta") == (1, 9, 3)
    assert below("1.8.99", "1.9") and not below("1.9", "1.9.0") and below("1.10", "2")
    assert not below("10.0", "9.9")
