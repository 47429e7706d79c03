"""A test seam: die by SIGKILL at a named point of a run (SQL and S3 engines).

``RETENTIOND_TEST_CRASH_AT=<point>:<n>`` kills the process (SIGKILL: no cleanup, no
``finally``, no rollback) the ``n``-th time execution reaches ``<point>``. Unset — always, in
production — a call costs one environment lookup. The crash-consistency tests run
``retentiond run`` in a subprocess with this variable, then rerun and check SPEC §5's
invariants against the databases, the buckets and the ledger.

The points (see ``POINTS`` and ``S3_POINTS``) are named where the code calls :func:`crash_point`.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "RETENTIOND_TEST_CRASH_AT"

#: Every point the SQL run path offers, in the order a run reaches them. A PostgreSQL batch that
#: is one statement in autocommit (page ranges, ``stores.sql.engine.statement_engine``) commits as
#: the statement returns: its ``sql_after_action`` … ``sql_after_outbox_insert`` come after that commit.
POINTS = (
    "run_after_reconcile",  # outbox relayed at start, run_started not yet appended
    "sql_after_select",  # batch keys selected, nothing changed yet (transaction open)
    "sql_after_action",  # DELETE/UPDATE done, prior versions not yet deleted (uncommitted)
    "sql_after_history",  # prior versions deleted, outbox row not yet inserted (uncommitted)
    "sql_after_outbox_insert",  # outbox row inserted, COMMIT not yet sent
    "sql_after_commit",  # batch committed, outcome not yet appended to the ledger
    "relay_after_append",  # outcome in the ledger, outbox row not yet removed
    "between_batches",  # a batch fully relayed, the next not started
    "sql_history_after_delete",  # prior_versions batch: rows deleted, outbox row not inserted
    "held_between_entries",  # one `held` entry appended, the next not yet
    "before_run_finished",  # every category done, run_finished not appended
    "before_checkpoint",  # run_finished appended, checkpoint not signed
)

#: Points of the whole-partition purge of a range-partitioned SQL target (stores.sql.partitions).
PARTITION_POINTS = (
    "sql_partition_after_intent",  # intent committed, the partition still attached
    "sql_partition_after_detach",  # partition detached, keys not read, nothing audited (no outbox row)
    "sql_partition_before_commit",  # outbox rows written and DROP done, COMMIT not yet sent
)

#: Points of the S3 engine.
S3_POINTS = (
    "s3_after_intent",  # intent durable, DeleteObjects not sent
    "s3_after_delete",  # response received, outcome not written
    "s3_after_outcome",  # outcome written, not relayed
    "s3_before_remove",  # relayed to the ledger, intent not yet forgotten
)

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
