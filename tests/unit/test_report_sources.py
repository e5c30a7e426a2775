"""Where report evidence comes from: the catalogue, server configs, test markers, JUnit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xmpp_clinic.report.catalogue import catalogue_ids, load_catalogue
from xmpp_clinic.report.server import read_ejabberd, read_prosody
from xmpp_clinic.report.tests import collect, scan_markers

SHARED = Path("/work/shared/REQUIREMENTS.md")


@pytest.mark.requirement("I.11")
def test_the_catalogue_ships_in_the_package_with_29_unique_ids() -> None:
    ids = catalogue_ids()
    assert ids[0] == "I.1" and ids[-1] == "IV.9" and len(set(ids)) == len(ids) == 29
    assert all(item.text and item.level for item in load_catalogue())


@pytest.mark.skipif(not SHARED.exists(), reason="the shared catalogue is a project file")
def test_the_shipped_catalogue_matches_the_shared_one() -> None:
    text = SHARED.read_text(encoding="utf-8")
    for item in load_catalogue():
        assert f"| {item.id} | {item.level} | {item.text} |" in text


@pytest.mark.requirement("IV.2", "IV.8")
def test_prosody_config_comments_do_not_count() -> None:
    lua = (
        'modules_enabled = {\n "mam"; "privilege";\n -- "clinic_confine";\n}\n'
        'archive_expires_after = "never"\n'
        'privileged_entities = { ["clinic.hospital.test"] = { roster = "both" } }\n'
    )
    found = read_prosody(lua, "clinic.hospital.test")
    assert (found.confinement, found.privilege, found.mam_expiry) == (False, True, None)
    found = read_prosody(lua.replace("-- ", "") + 'archive_expires_after = "1d"', "x")
    assert found.confinement and found.mam_expiry == "1d" and not found.privilege
    assert found.upload_expiry is None
    upload = read_prosody(lua + "http_file_share_expires_after = 2592000\n", "x")
    assert upload.upload_expiry == "30 days"  # Prosody counts seconds
    odd = read_prosody(lua + "http_file_share_expires_after = 3600\n", "x")
    assert odd.upload_expiry == "1 hours"


@pytest.mark.requirement("IV.2")
def test_ejabberd_config_names_the_modules() -> None:
    yml = (
        "hosts:\n  - hospital.test\nmodules:\n  mod_mam: {}\n"
        "  # mod_clinic_confine: {}\n  mod_privilege:\n    roster: {both: gateway}\n"
        "  mod_http_upload_quota:\n    max_days: 7\n"
    )
    found = read_ejabberd(yml)
    assert found.confinement is False and found.privilege is True
    assert found.upload_expiry == "7 days" and found.mam_expiry is not None
    assert read_ejabberd(yml.replace("# mod_clinic", "mod_clinic")).confinement is True


@pytest.mark.requirement("I.11")
def test_markers_are_read_from_sources_without_importing_them(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "unit"
    folder.mkdir(parents=True)
    (folder / "test_a.py").write_text(
        "import pytest\nraise SystemExit('never imported')\n"
        '@pytest.mark.requirement("II.1", "I.4")\ndef test_x(): pass\n'
        '@pytest.mark.requirement("II.1")\nclass TestY:\n'
        '    @pytest.mark.requirement("I.5")\n    async def test_z(self): pass\n'
        "def test_unmarked(): pass\n"
    )
    found = scan_markers(tmp_path / "tests")
    assert found == {
        "II.1": ["tests/unit/test_a.py::test_x", "tests/unit/test_a.py::TestY::test_z"],
        "I.4": ["tests/unit/test_a.py::test_x"],
        "I.5": ["tests/unit/test_a.py::TestY::test_z"],
    }
    assert collect(tmp_path / "tests", None).run_summary == ""


PLUGIN_TEST = """
import pytest

@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("server", ["prosody", "ejabberd"])
def test_marked(server):
    assert server != "ejabberd"
"""


@pytest.mark.requirement("I.11")
def test_plugin_records_requirements_in_junit_and_refuses_unknown_ids(tmp_path: Path) -> None:
    """A real pytest run: strict markers accepted, IDs in the JUnit file, outcomes read."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_p.py").write_text(PLUGIN_TEST)
    junit = tmp_path / "junit.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "xmpp_clinic.report.pytest_plugin"]
    args += ["--strict-markers", "-p", "no:cacheprovider", f"--junitxml={junit}", "tests"]
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    (proof,) = collect(None, junit).proofs("II.1")
    assert proof.test == "tests/test_p.py::test_marked" and proof.outcome.value == "failed"
    (tmp_path / "tests" / "test_p.py").write_text(PLUGIN_TEST.replace("II.1", "II.99"))
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "'II.99' is not in the catalogue" in run.stdout + run.stderr


@pytest.mark.requirement("IV.4")
async def test_the_gateway_schedule_saves_chained_reports(tmp_path: Path) -> None:
    from tests.unit.harness import make_settings, migrated_store
    from xmpp_clinic.report.history import ReportHistory
    from xmpp_clinic.report.scheduler import ReportScheduler

    store = await migrated_store(tmp_path / "clinic.db")
    try:
        settings = make_settings(tmp_path, report={"save_every_hours": 24})
        scheduler = ReportScheduler(settings, store)
        assert scheduler.every_seconds == 24 * 3600
        assert await scheduler.save_now() == 1
        assert await scheduler.save_now() == 2
        history = ReportHistory(store)
        assert await history.count() == 2 and await history.verify() is None
        latest = await history.latest()
        assert latest is not None and latest.report.finding("IV.4").status.value == "met"
        scheduler.start()
        await scheduler.stop()
    finally:
        await store.close()
