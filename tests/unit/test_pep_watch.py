# ruff: noqa: E501  (literal XML reads best on one line)
"""The component subscribes to members' device-list nodes and reacts to their events
(issue 9.7; I.4, I.5), as literal stanzas on a component stream."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.pep_watch import DeviceListWatch

BOB = "bob@hospital.test"
PUBSUB = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
LEGACY_LIST = "eu.siacs.conversations.axolotl.devicelist"
OMEMO2_LIST = "urn:xmpp:omemo:2:devices"


def subscribe(iq_id: str, node: str) -> str:
    return f'<iq type="set" to="{BOB}" from="{COMPONENT}" id="{iq_id}"><pubsub xmlns="{PUBSUB}"><subscribe node="{node}" jid="{COMPONENT}" /></pubsub></iq>'


def subscribed(iq_id: str, node: str) -> str:
    return f'<iq type="result" from="{BOB}" to="{COMPONENT}" id="{iq_id}"><pubsub xmlns="{PUBSUB}"><subscription node="{node}" jid="{COMPONENT}" subscription="subscribed"/></pubsub></iq>'


def refused(iq_id: str, condition: str) -> str:
    return f'<iq type="error" from="{BOB}" to="{COMPONENT}" id="{iq_id}"><error type="cancel"><{condition} xmlns="{STANZAS}"/></error></iq>'


def event(node: str, sender: str = BOB) -> str:
    return f'<message type="headline" from="{sender}" to="{COMPONENT}"><event xmlns="{EVENT}"><items node="{node}"><item id="current"><devices xmlns="urn:xmpp:omemo:2"><device id="7"/></devices></item></items></event></message>'


class WatchTest(ComponentTest):
    literal = True

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))
        self.changed: list[str] = []
        self.watch = DeviceListWatch(self.xmpp, self.changed.append)

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    def subscribe_both(self, legacy: str, omemo2: str) -> None:
        """Watch Bob; the server answers the two subscriptions with ``legacy``/``omemo2``."""
        done = self.started(self.watch.watch(BOB))
        self.send(subscribe("1", LEGACY_LIST))
        self.recv(legacy.replace("{id}", "1"))
        self.send(subscribe("2", OMEMO2_LIST))
        self.recv(omemo2.replace("{id}", "2"))
        self.run_coro(done)


class TestSubscriptions(WatchTest):
    def test_the_component_subscribes_to_both_device_lists_with_its_own_jid(self) -> None:
        self.subscribe_both(subscribed("{id}", LEGACY_LIST), subscribed("{id}", OMEMO2_LIST))
        assert self.watch.subscribed == {(BOB, LEGACY_LIST), (BOB, OMEMO2_LIST)}
        assert self.watch.refused == {}

    def test_a_refusal_is_remembered_and_logged_once(self) -> None:
        with self.assertLogs("xmpp_clinic.xmpp.pep_watch", logging.DEBUG) as logs:
            self.subscribe_both(refused("{id}", "forbidden"), refused("{id}", "forbidden"))
        assert self.watch.subscribed == set()
        assert self.watch.refused == {
            (BOB, LEGACY_LIST): "forbidden",
            (BOB, OMEMO2_LIST): "forbidden",
        }
        assert [r.levelno for r in logs.records] == [logging.WARNING, logging.DEBUG]
        assert all(BOB not in r.getMessage() for r in logs.records)

    def test_a_refused_node_is_tried_again_later(self) -> None:
        self.subscribe_both(refused("{id}", "item-not-found"), subscribed("{id}", OMEMO2_LIST))
        done = self.started(self.watch.watch(BOB))
        self.send(subscribe("3", LEGACY_LIST))
        self.recv(subscribed("3", LEGACY_LIST))
        self.run_coro(done)
        self.send(None)  # the OMEMO 2 node is not asked again
        assert (BOB, LEGACY_LIST) in self.watch.subscribed and self.watch.refused == {}

    def test_a_server_without_subscriptions_is_not_asked_again(self) -> None:
        done = self.started(self.watch.watch(BOB))
        self.send(subscribe("1", LEGACY_LIST))
        self.recv(refused("1", "feature-not-implemented"))
        self.run_coro(done)
        self.send(None)
        self.run_coro(self.watch.watch(BOB))
        self.send(None)

    def test_a_former_member_is_unsubscribed_and_ignored(self) -> None:
        self.subscribe_both(subscribed("{id}", LEGACY_LIST), subscribed("{id}", OMEMO2_LIST))
        self.run_coro(self.watch.watch_many([]))
        self._waited_on |= self.watch._unsubscribing  # awaiting the answers below
        self.send(
            f'<iq type="set" to="{BOB}" from="{COMPONENT}" id="3"><pubsub xmlns="{PUBSUB}"><unsubscribe node="{LEGACY_LIST}" jid="{COMPONENT}" /></pubsub></iq>'
        )
        self.send(
            f'<iq type="set" to="{BOB}" from="{COMPONENT}" id="4"><pubsub xmlns="{PUBSUB}"><unsubscribe node="{OMEMO2_LIST}" jid="{COMPONENT}" /></pubsub></iq>'
        )
        self.recv(f'<iq type="result" from="{BOB}" to="{COMPONENT}" id="3"/>')
        self.recv(f'<iq type="result" from="{BOB}" to="{COMPONENT}" id="4"/>')
        self.recv(event(OMEMO2_LIST))
        self.settle()
        assert self.changed == [] and self.watch.watched == set()
        assert self.watch._unsubscribing == set()


class TestEvents(WatchTest):
    def setUp(self) -> None:
        super().setUp()
        self.subscribe_both(subscribed("{id}", LEGACY_LIST), subscribed("{id}", OMEMO2_LIST))

    def test_a_device_list_event_from_a_member_refreshes_them(self) -> None:
        for node in (LEGACY_LIST, OMEMO2_LIST):
            self.recv(event(node))
        self.settle()
        assert self.changed == [BOB, BOB]
        self.send(None)  # events are not answered

    def test_a_retraction_or_deletion_counts_too(self) -> None:
        self.recv(
            f'<message from="{BOB}" to="{COMPONENT}"><event xmlns="{EVENT}"><items node="{OMEMO2_LIST}"><retract id="current"/></items></event></message>'
        )
        self.recv(
            f'<message from="{BOB}" to="{COMPONENT}"><event xmlns="{EVENT}"><delete node="{LEGACY_LIST}"/></event></message>'
        )
        self.settle()
        assert self.changed == [BOB, BOB]

    @pytest.mark.requirement("I.4")
    def test_other_nodes_and_other_senders_are_ignored(self) -> None:
        self.recv(event("urn:xmpp:omemo:2:bundles"))
        self.recv(event(OMEMO2_LIST, sender="eve@hospital.test"))
        self.recv(event(OMEMO2_LIST, sender=f"{BOB}/phone"))
        self.settle()
        assert self.changed == []
