"""The directory as plain data: CSV rows, the diff, the removal guard, thread binding (IV.2)."""

from __future__ import annotations

import pytest

from xmpp_clinic.directory.csv_import import BadFile, read_csv
from xmpp_clinic.directory.model import (
    Directory,
    Person,
    TooManyRemovals,
    check_removals,
    diff,
    group_kind,
)
from xmpp_clinic.directory.service import left_jids
from xmpp_clinic.threads.binding import reconcile

pytestmark = pytest.mark.requirement("IV.2")

DOMAINS = frozenset({"hospital.test"})
HEADER = "jid,name,staff_id,role,groups\n"


def person(key: str, *groups: str, jid: str = "", role: str = "nurse") -> Person:
    return Person(
        key=key,
        name=key.title(),
        staff_id=key,
        role=role,
        jids=(jid or f"{key}@hospital.test",),
        groups=frozenset(groups),
    )


def test_csv_rows_become_persons_groups_and_role_groups() -> None:
    parsed = read_csv(
        (
            HEADER + "alice@hospital.test,Alice A,100,Nurse,ward-a;team-night\n"
            "Bob@Hospital.test;bob2@hospital.test,Bob B,101,physician,ward-b\n"
        ).encode(),
        DOMAINS,
    )
    assert parsed.bad_rows == ()
    d = parsed.directory
    assert d.members_of("ward-a") == {"alice@hospital.test"}
    assert d.members_of("ward-b") == {"bob@hospital.test", "bob2@hospital.test"}
    assert d.members_of("role-nurse") == {"alice@hospital.test"}
    assert d.person_of("bob2@hospital.test") == d.get("101")
    assert group_kind("ward-a") == "ward" and group_kind("night-shift") == "team"


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("mallory@elsewhere.test,Mallory,9,,ward-a", "not in xmpp.user_domains"),
        (",Nobody,9,,ward-a", "no JID"),
        ("x@hospital.test/phone,X,9,,", "/resource"),
        ("y@hospital.test,,9,,", "no name"),
        ("z@hospital.test,Z,9,,Ward A!", "invalid group name"),
        ("alice@hospital.test,Alice again,9,,", "already belongs to 100"),
        ("other@hospital.test,Other,100,,", "staff_id 100 appears twice"),
        ("w@hospital.test,W,9,,,extra", "more fields"),
    ],
)
def test_a_bad_row_is_skipped_with_its_line_and_reason(row: str, reason: str) -> None:
    text = HEADER + "alice@hospital.test,Alice,100,nurse,ward-a\n" + row + "\n"
    parsed = read_csv(text.encode(), DOMAINS)
    assert len(parsed.bad_rows) == 1
    assert parsed.bad_rows[0].line == 3
    assert reason in parsed.bad_rows[0].reason
    assert len(parsed.directory) == 1  # the good row is still read


def test_a_file_without_the_jid_column_is_refused() -> None:
    with pytest.raises(BadFile, match="lacks jid"):
        read_csv(b"name,role\nAlice,nurse\n", DOMAINS)


def test_a_second_import_of_the_same_export_changes_nothing() -> None:
    old = Directory([person("a", "ward-a"), person("b", "ward-b")])
    new = Directory([person("a", "ward-a"), person("b", "ward-b")])
    assert diff(old, new).empty


def test_diff_names_persons_and_memberships() -> None:
    old = Directory([person("a", "ward-a"), person("b", "ward-a"), person("c")])
    new = Directory([person("a", "ward-b"), person("b", "ward-a", role="physician"), person("d")])
    change = diff(old, new)
    assert [p.key for p in change.added] == ["d"]
    assert [p.key for p in change.removed] == ["c"]
    assert [after.key for _b, after in change.changed] == ["b"]
    assert ("a", "ward-b") in {(m.person, m.group) for m in change.memberships_added}
    assert ("a", "ward-a") in {(m.person, m.group) for m in change.memberships_removed}
    assert "- person c C (c@hospital.test)" in change.lines()


def test_a_truncated_export_is_refused_unless_forced() -> None:
    old = Directory(person(f"p{i}") for i in range(200))
    change = diff(old, Directory(person(f"p{i}") for i in range(3)))
    with pytest.raises(TooManyRemovals, match="remove 197 of 200 persons"):
        check_removals(change, 0.10, force=False)
    check_removals(change, 0.10, force=True)


def test_removals_up_to_the_share_pass() -> None:
    old = Directory(person(f"p{i}") for i in range(10))
    check_removals(diff(old, Directory(person(f"p{i}") for i in range(9))), 0.10, force=False)


def test_a_jid_moving_to_another_person_does_not_leave() -> None:
    old = Directory([person("a", jid="shared@hospital.test"), person("b")])
    new = Directory([person("a", jid="a2@hospital.test"), person("c", jid="shared@hospital.test")])
    assert left_jids(diff(old, new)) == ("b@hospital.test",)


A, B, C, H = (f"{x}@hospital.test" for x in "abch")


def test_bound_thread_follows_its_groups_and_keeps_people_added_by_hand() -> None:
    result = reconcile(
        current=frozenset({A, B, H}),
        bound_before=frozenset({A, B}),
        from_groups=frozenset({B, C}),
        allowed=frozenset({A, B, C, H}),
    )
    assert result.add == {C} and result.remove == {A}
    assert result.bound == {B, C}


def test_a_person_added_by_hand_stays_when_their_group_drops_them() -> None:
    result = reconcile(frozenset({H}), frozenset(), frozenset(), frozenset({H}))
    assert result.remove == frozenset()


def test_with_a_directory_nobody_outside_it_stays_a_member() -> None:
    result = reconcile(frozenset({A, H}), frozenset(), frozenset(), allowed=frozenset({A}))
    assert result.remove == {H}


def test_small_deployment_mode_removes_nobody_for_missing_from_a_directory() -> None:
    result = reconcile(frozenset({A, H}), frozenset(), frozenset(), allowed=None)
    assert result.remove == frozenset() and result.add == frozenset()
