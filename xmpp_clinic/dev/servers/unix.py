"""Unix facts a private server needs: system users, folder access, processes in /proc.

Linux only (``/proc``), as the dev servers are.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

BEAM = b"beam"


def user_exists(name: str) -> bool:
    """True when the system user ``name`` exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def reachable_by(user: str, folder: Path) -> bool:
    """True when ``user`` may traverse every folder from / down to ``folder``."""
    account = pwd.getpwnam(user)
    groups = set(os.getgrouplist(user, account.pw_gid))
    existing = folder if folder.exists() else next(p for p in folder.parents if p.exists())
    for path in [existing, *existing.parents]:
        info = path.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def chown_tree(folder: Path, uid: int, gid: int) -> None:
    """chown -R ``folder`` to ``uid:gid`` (without following symbolic links)."""
    os.chown(folder, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def alive(pid: int) -> bool:
    """True when ``pid`` runs and is not a zombie (PID 1 may not reap in containers)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def find_node(node_name: str) -> int | None:
    """The pid of the Erlang VM started with ``-sname node_name`` (unique per instance)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and runs_node(int(entry.name), node_name):
            return int(entry.name)
    return None


def runs_node(pid: int, node_name: str) -> bool:
    """True when process ``pid`` is the Erlang VM of ``node_name`` (guards pid reuse)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return BEAM in argv[0] and node_name.encode() in argv
