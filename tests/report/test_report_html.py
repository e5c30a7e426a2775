"""The HTML report in a real browser: headless Chromium at 1280 px (I.11).

The page must show one row per catalogue ID and never scroll sideways, even with long
unbroken values (hashes, JIDs, test ids). A copy of the page gets a one-line probe script
that writes the measurements into the title; the product page itself has no script.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from xmpp_clinic.report.catalogue import load_catalogue
from xmpp_clinic.report.html import to_html
from xmpp_clinic.report.model import Evidence, Finding, Outcome, Report, Status, TestProof

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH = 1280
PROBE = (
    "<script>document.title=JSON.stringify({scroll:document.documentElement.scrollWidth,"
    "client:document.documentElement.clientWidth,"
    "rows:document.querySelectorAll('tr[data-id]').length})</script>"
)

# No skip: a report page nobody rendered proves nothing. `make deps` installs chromium.
pytestmark = pytest.mark.usefixtures("chromium_present")


@pytest.fixture
def chromium_present() -> None:
    if CHROMIUM is None:
        pytest.fail("Debian's chromium package is missing: run `make deps`")


def long_report() -> Report:
    """Every catalogue ID, with the longest values a real report carries."""
    statuses = list(Status)
    findings = tuple(
        Finding(
            id=item.id,
            level=item.level,
            requirement=item.text,
            control=item.gateway,
            status=statuses[n % len(statuses)],
            reason="why " * 20,
            evidence=(
                Evidence("audit head", "4:" + "ab12" * 40),
                Evidence("outdated", "alice@hospital.test/" + "x" * 200),
            ),
            owner="hospital IT: do something" if n % 4 == 3 else "",
            tests=(TestProof("tests/unit/test_" + "y" * 150 + ".py::test_z", Outcome.PASSED),),
        )
        for n, item in enumerate(load_catalogue())
    )
    return Report(
        "2026-01-01T00:00:00+00:00", "clinic.hospital.test", "0.1.0", ("w" * 300,), findings
    )


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu"]
    command += [f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.mark.requirement("I.11")
def test_html_report_has_one_row_per_id_and_no_horizontal_scroll_at_1280(tmp_path: Path) -> None:
    page = to_html(long_report())
    assert "<script" not in page and "http://" not in page and "https://" not in page
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium(tmp_path, "--dump-dom", probed.as_uri())
    found = re.search(r"<title>(.*?)</title>", dom)
    assert found is not None, dom[:500]
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    assert measured["rows"] == len(load_catalogue()) == 29
    assert measured["client"] <= WIDTH
    assert measured["scroll"] <= measured["client"], measured


@pytest.mark.requirement("I.11")
def test_html_report_renders_to_a_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(to_html(long_report()), encoding="utf-8")
    shot = tmp_path / "report.png"
    chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    assert png_size(shot) == (WIDTH, 900)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
