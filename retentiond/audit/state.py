"""The auditor's ``--state`` file: the newest checkpoint a verification accepted.

``audit verify --state FILE`` reads it as a trusted checkpoint (a later verification that sees
an older head or another history fails with ``rolled_back``) and, after a successful
verification, replaces it with the newest checkpoint just verified. The file lives with the
auditor (their cron job's directory, or a bucket of theirs), never with the daemon.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from retentiond.audit.canonical import canonical_loads, utcnow_text
from retentiond.audit.export import row_to_json
from retentiond.audit.results import TrustedCheckpoint, VerifyResult

STATE_FORMAT = "retentiond-verify-state-v1"


def read_state(path: Path, ledger_id: str | None = None) -> TrustedCheckpoint | None:
    """Return the checkpoint remembered in ``path``, or None when the file does not exist yet.

    Raises:
        ValueError: the file is not a state file (or one of another ledger).
        OSError: the file exists but cannot be read.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    data = canonical_loads(text)
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ValueError("not a retentiond verify state file")
    if ledger_id is not None and data.get("ledger_id") != ledger_id:
        raise ValueError(f"the state file belongs to ledger {data.get('ledger_id')!r}")
    verified_at = data.get("verified_at", "?")
    return TrustedCheckpoint.from_json(
        data["checkpoint"], source=f"state file {path.name} (verified {verified_at})", origin="state"
    )


def write_state(path: Path, result: VerifyResult, previous: TrustedCheckpoint | None) -> bool:
    """Remember the newest checkpoint of a successful verification; return True when written.

    Nothing is written when the verification failed or found no newer checkpoint than
    ``previous``. The file is replaced atomically (write, fsync, rename).
    """
    entry = result.last_checkpoint_entry
    if not result.ok or entry is None or (previous is not None and entry[0] <= previous.seq):
        return False
    data: dict[str, Any] = {
        "format": STATE_FORMAT,
        "ledger_id": result.ledger_id,
        "verified_at": utcnow_text(),
        "head_seq": result.head_seq,
        "checkpoint": row_to_json(entry),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, sort_keys=True, indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return True
