"""Documented threads: the flag, the records member in the member list, the audit trail
(I.6, IV.4)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.cli import app
from xmpp_clinic.store import Store
from xmpp_clinic.threads import InvalidThread, OutsideUserDomains, ThreadService

RECORDS = "records@clinic.hospital.test"
DOMAINS = ["hospital.test"]
ANNA, BEN = "anna@hospital.test", "ben@hospital.test"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


def service(store: Store) -> ThreadService:
    return ThreadService(store, user_domains=DOMAINS, records_jid=RECORDS)


@pytest.mark.requirement("I.6")
async def test_documented_thread_lists_the_records_member(store: Store) -> None:
    thread = await service(store).create("icu-1", "ICU", [ANNA, BEN], documented=True)
    assert thread.documented
    assert thread.member(RECORDS) is not None
    assert thread.member(RECORDS).affiliation == "member"  # type: ignore[union-attr]
    [listed] = await service(store).list()
    assert RECORDS in listed.member_jids


@pytest.mark.requirement("I.6")
async def test_undocumented_thread_has_no_records_member(store: Store) -> None:
    thread = await service(store).create("icu-1", "ICU", [ANNA])
    assert not thread.documented and RECORDS not in thread.member_jids


@pytest.mark.requirement("I.6")
async def test_turning_documentation_on_and_off(store: Store) -> None:
    threads = service(store)
    await threads.create("icu-1", "ICU", [ANNA])
    on = await threads.set_documented("icu-1", True, actor="cli:it")
    assert on.documented and RECORDS in on.member_jids
    assert RECORDS in (await threads.get("icu-1")).member_jids
    off = await threads.set_documented("icu-1", False, actor="cli:it")
    assert not off.documented and RECORDS not in off.member_jids
    assert off.member_jids == {ANNA}


@pytest.mark.requirement("I.6", "IV.4")
async def test_each_change_of_the_flag_is_one_audit_event(store: Store) -> None:
    threads = service(store)
    await threads.create("icu-1", "ICU", [ANNA], documented=True, actor="cli:it")
    await threads.set_documented("icu-1", True, actor="cli:it")  # already on: no event
    await threads.set_documented("icu-1", False, actor="xmpp:lead@hospital.test")
    flags = [
        (e.actor, e.reason)
        for e in await AuditLog(store).events(subject="icu-1")
        if e.action == "thread.documented"
    ]
    assert flags == [("cli:it", "on"), ("xmpp:lead@hospital.test", "off")]


@pytest.mark.requirement("I.6")
async def test_no_thread_takes_the_records_members_address(store: Store) -> None:
    with pytest.raises(InvalidThread, match="reserved"):
        await service(store).create("records", "Trick", [ANNA])


@pytest.mark.requirement("I.6")
async def test_the_records_member_cannot_be_added_by_hand(store: Store) -> None:
    threads = service(store)
    await threads.create("icu-1", "ICU", [ANNA])
    with pytest.raises(OutsideUserDomains):
        await threads.add_member("icu-1", RECORDS)
    assert RECORDS not in (await threads.get("icu-1")).member_jids


# ------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write_config(tmp_path, user_domains=DOMAINS)
    use_template(template, path)
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["threads", *args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.requirement("I.6")
def test_cli_create_documented_and_switch_off(config: Path) -> None:
    code, out, _ = cli(
        config, "create", "icu-1", "--title", "ICU", "--member", ANNA, "--documented"
    )
    assert code == 0 and "documented in the patient record" in out
    code, out, _ = cli(config, "members", "icu-1", "--json")
    assert {m["jid"] for m in json.loads(out)} == {ANNA, RECORDS}
    code, out, _ = cli(config, "set-documented", "icu-1", "off")
    assert code == 0 and "icu-1 is not documented" in out
    code, out, _ = cli(config, "list", "--json")
    [thread] = json.loads(out)
    assert thread["documented"] is False
    assert [m["jid"] for m in thread["members"]] == [ANNA]


@pytest.mark.requirement("I.6")
def test_cli_set_documented_takes_on_or_off(config: Path) -> None:
    cli(config, "create", "icu-1", "--title", "ICU", "--member", ANNA)
    code, _, err = cli(config, "set-documented", "icu-1", "maybe")
    assert code == 2 and "on or off" in err
    code, _, err = cli(config, "set-documented", "nowhere", "on")
    assert code == 1 and "nowhere" in err


@pytest.mark.requirement("I.6")
async def test_readers_without_the_records_jid_still_see_the_flag(store: Store) -> None:
    await service(store).create("icu-1", "ICU", [ANNA], documented=True)
    [thread] = await ThreadService(store, user_domains=DOMAINS).list()
    assert thread.documented and thread.member_jids == {ANNA}
