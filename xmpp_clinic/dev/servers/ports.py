"""Loopback port helpers: pick free ports and wait for listeners to open or close."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

LOOPBACK = "127.0.0.1"

_handed_out: set[int] = set()
_lock = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free now and not handed out before in this process.

    The kernel picks the port (bind to port 0); remembering the ports already returned keeps
    two servers started by one process from getting the same port before either binds it.
    """
    with _lock:
        for _ in range(100):
            port = _kernel_port(host)
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError(f"no free TCP port found on {host}")


def _kernel_port(host: str) -> int:
    """Ask the kernel for an ephemeral port on ``host`` and release it at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Return True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.05,
    abort: Callable[[], str | None] | None = None,
) -> str | None:
    """Poll ``condition`` until it holds; return None on success or a reason on failure.

    ``abort`` is polled as well: when it returns a message the wait ends early with that
    message (e.g. the server process died), and on timeout the reason says so.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return None
        if abort is not None and (reason := abort()) is not None:
            return reason
        if time.monotonic() >= deadline:
            return f"timed out after {timeout:.0f} s"
        time.sleep(interval)


def all_open(host: str, ports: Iterable[int]) -> Callable[[], bool]:
    """Return a condition that holds when every port in ``ports`` accepts connections."""
    port_list = list(ports)
    return lambda: all(port_open(host, port) for port in port_list)


def all_closed(host: str, ports: Iterable[int]) -> Callable[[], bool]:
    """Return a condition that holds when no port in ``ports`` accepts connections."""
    port_list = list(ports)
    return lambda: not any(port_open(host, port) for port in port_list)
