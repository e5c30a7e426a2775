"""Runs ``xmpp-clinic run`` under tracemalloc; SIGUSR1 writes a snapshot (bench/memory.py).

    python bench/memory_probe.py DUMP_DIR [xmpp-clinic arguments ...]

Each SIGUSR1 dumps ``DUMP_DIR/snapshot-N.dump`` (N = 1, 2, ...) for
``tracemalloc.Snapshot.load``; each SIGUSR2 writes the Python stacks to
``DUMP_DIR/stacks.txt`` (faulthandler), to see what a busy gateway is doing. Only for
``bench/memory.py --trace``: tracemalloc makes the gateway slower and larger, so its RSS
figures are not the gateway's.
"""

from __future__ import annotations

import faulthandler
import runpy
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 1  # the line that allocated; more frames make the gateway far slower


def main() -> None:
    dump_dir = Path(sys.argv[1])
    dump_dir.mkdir(parents=True, exist_ok=True)
    taken = 0

    def dump(_signum: int, _frame: FrameType | None) -> None:
        nonlocal taken
        taken += 1
        tracemalloc.take_snapshot().dump(str(dump_dir / f"snapshot-{taken}.dump"))
        (dump_dir / f"snapshot-{taken}.done").touch()

    stacks = (dump_dir / "stacks.txt").open("a")
    faulthandler.register(signal.SIGUSR2, file=stacks, all_threads=True)
    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["xmpp-clinic", *sys.argv[2:]]
    runpy.run_module("xmpp_clinic", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
