"""`xmpp-clinic run` as an operator runs it: JSON logs, config warnings at WARNING, clean
stop on SIGTERM and Ctrl-C, exit codes."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import write_config
from xmpp_clinic.dev.servers import DevServer

pytestmark = pytest.mark.integration

LogEntry = dict[str, Any]


def _read_json_lines_until(
    proc: subprocess.Popen[str], event: str, timeout: float
) -> list[LogEntry]:
    """Collect JSON log lines from stderr until one has ``event``; fail on a non-JSON line."""
    assert proc.stderr is not None
    lines: list[LogEntry] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        raw = proc.stderr.readline()
        if not raw:
            break
        entry = json.loads(raw)  # every line is one JSON object
        lines.append(entry)
        if entry["event"] == event:
            return lines
    raise AssertionError(f"no {event!r} log line within {timeout}s; got {lines}")


@pytest.mark.requirement("I.12")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_run_logs_json_and_stops_cleanly(
    xmpp_server: DevServer, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    config = write_config(xmpp_server, tmp_path, logging={"json": True, "level": "DEBUG"})
    secret_file = tmp_path / "component.secret"
    secret_file.chmod(0o640)  # readable by the group: run must say so, once, at WARNING
    proc = subprocess.Popen(
        [sys.executable, "-m", "xmpp_clinic", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        lines = _read_json_lines_until(proc, "component online", timeout=20)
        assert all({"ts", "level", "logger", "event"} <= entry.keys() for entry in lines)
        warnings = [e["event"] for e in lines if e["level"] == "warning"]
        assert [w for w in warnings if w.startswith("xmpp.secret_file")] == [
            f"xmpp.secret_file {secret_file} is readable by group or others (mode 0640); "
            f"fix: chmod 600 {secret_file}"
        ]
        proc.send_signal(stop_signal)
        rest = _read_json_lines_until(proc, "gateway stopping", timeout=10)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    secret = xmpp_server.component_secret
    assert all(secret not in json.dumps(entry) for entry in lines + rest)


@pytest.mark.requirement("I.12")
def test_run_with_unreachable_store_exits_1_with_a_clear_line(
    xmpp_server: DevServer, tmp_path: Path
) -> None:
    config = write_config(
        xmpp_server, tmp_path, store={"url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    )
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "store" in last and "[store] url" in last
