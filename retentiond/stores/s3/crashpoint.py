"""A test seam: die by SIGKILL at a named point of the S3 engine.

``RETENTIOND_TEST_CRASH_AT=<point>:<n>`` kills the process (SIGKILL: no cleanup, no
``finally``) the ``n``-th time execution reaches ``<point>``. Unset (always, in production)
this costs one dictionary lookup. The crash-consistency tests run ``retentiond run`` in a
subprocess with this variable, then rerun and check the ledger against the bucket.

Points: ``s3_after_intent`` (intent durable, request not sent), ``s3_after_delete`` (response
received, outcome not written), ``s3_after_outcome`` (outcome written, not relayed),
``s3_before_remove`` (relayed to the ledger, not yet forgotten).
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "RETENTIOND_TEST_CRASH_AT"
_counts: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``RETENTIOND_TEST_CRASH_AT`` names ``name`` and its count is reached."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, _, nth = spec.rpartition(":")
    if point != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] >= int(nth or "1"):
            os.kill(os.getpid(), signal.SIGKILL)
