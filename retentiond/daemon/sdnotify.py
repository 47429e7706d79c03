"""The sd_notify protocol, written here (no libsystemd binding): datagrams to ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import socket
import time


def notify(*fields: str, wait: bool = True) -> bool:
    """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) to systemd; return False when not sent.

    Never raises: a lost notification must not stop the service (systemd's watchdog or start
    timeout will report it). With ``wait=False`` a full socket queue drops the message instead
    of waiting for room: for progress, which must never hold up a batch.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not fields:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(wait)
            sock.connect(address)
            sock.sendall("\n".join(fields).encode("utf-8", "replace"))
    except OSError:
        return False
    return True


def reloading_fields() -> tuple[str, str]:
    """Return ``RELOADING=1`` with ``MONOTONIC_USEC`` (systemd ≥ 253 requires it for Type=notify-reload)."""
    return "RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval() -> float | None:
    """Return half of ``WATCHDOG_USEC`` in seconds when the watchdog is meant for this process, else None."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
