"""``scripts/install-deps.sh`` waits for another apt run's lock instead of failing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install-deps.sh"


def wait_for_lock(lock: Path, seconds: int) -> subprocess.CompletedProcess[str]:
    """Source the script (defines functions, installs nothing) and wait on ``lock``."""
    command = f'source "{SCRIPT}"; APT_LOCKS=("{lock}"); APT_LOCK_WAIT={seconds}; wait_for_apt_lock'
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)


@pytest.fixture
def held_lock(tmp_path: Path) -> Iterator[Path]:
    """A file with an fcntl write lock, as dpkg holds /var/lib/dpkg/lock-frontend.

    Held by a child process: /proc/locks shows the holder's pid, and a lock of our own
    process would show ours.
    """
    lock = tmp_path / "lock-frontend"
    lock.touch()
    holder = subprocess.Popen(
        [
            "python3",
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()",
            str(lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    yield lock
    holder.communicate("", timeout=10)


def test_a_free_lock_is_not_waited_for(tmp_path: Path) -> None:
    lock = tmp_path / "lock-frontend"
    lock.touch()
    proc = wait_for_lock(lock, 0)
    assert proc.returncode == 0 and proc.stderr == ""


def test_a_held_lock_names_its_holder_and_the_wait_ends_with_a_clear_line(
    held_lock: Path,
) -> None:
    proc = wait_for_lock(held_lock, 0)
    assert proc.returncode == 1
    assert "holds the apt/dpkg lock" in proc.stderr and "waiting up to 0 s" in proc.stderr
    assert "still held" in proc.stderr and "APT_LOCK_WAIT" in proc.stderr
