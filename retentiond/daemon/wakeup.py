"""Wake the daemon's main thread at once on a signal, whichever thread the kernel delivered it to.

Python runs signal handlers in the main thread only, and a signal the kernel hands to another
thread (the metrics server's, the scheduler's) does not interrupt the main thread's wait: the
handler would run when that wait times out (30 s, 60 s under the shipped unit), and a second
edit of the file in that window would replace the first before it is ever evaluated. The
C-level handler writes the signal number to a socket whatever thread it ran on
(``signal.set_wakeup_fd``); the main thread waits on that socket.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket


class Wakeup:
    """The socket pair the main thread waits on; the signal machinery writes to it."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def install(self) -> None:
        """Make every signal write to the socket (call from the main thread)."""
        signal.set_wakeup_fd(self._w.fileno(), warn_on_full_buffer=False)

    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds or as soon as a signal arrived, the socket emptied.

        The drain is a call: the interpreter runs pending signal handlers at the latest there.
        """
        select.select([self._r], [], [], timeout)
        self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._r.recv(512):
                pass

    def close(self) -> None:
        """Stop writing to the socket and close it."""
        with contextlib.suppress(ValueError):  # not the main thread (tests): nothing was installed
            signal.set_wakeup_fd(-1)
        self._r.close()
        self._w.close()
