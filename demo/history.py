"""``make demo``'s fast-forward: a year of monthly runs, so the report has a history to show.

The seeded data spans the three years before *now*. This module replays the last eleven months
as the daemon would have lived them: one run a month (the first one stopped by the blast-radius
guard over years of never-purged data, then allowed once), while Legal places, extends and lifts
an investigation hold. Each run is the real engine (``Runner``) against the demo's SQLite
database and moto S3 server; only the clock is moved (time-machine), so the ledger's entries
carry the dates they would have had. The shipped holds file is in force throughout, and is left
exactly as shipped at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from dateutil.relativedelta import relativedelta

from retentiond.actions.run import Runner, RunReport
from retentiond.config.loader import load_config
from retentiond.logs import configure_logging

MONTHS = 11
INVESTIGATION = "INV-SEC-007"


def _investigation(placed: date, *, extended: bool) -> str:
    """Return the investigation hold as Legal writes it into the holds file."""
    expires = placed + relativedelta(months=6 if extended else 3)
    return f"""
# Added by the demo's fast-forward (removed again at the end).
[[hold]]
id = "{INVESTIGATION}"
kind = "investigation"
reason = "Security investigation: credential-stuffing attempt on a few accounts"
reference = "SEC-INC-007"
placed_by = "security@legal"
placed_at = {placed.isoformat()}
expires_at = {expires.isoformat()}
categories = ["auth_credential_logs", "network_connection"]
subjects = ["acct_1001", "acct_1002", "acct_1003"]
"""


def _line(at: datetime, report: RunReport, note: str = "") -> str:
    totals = report.totals()
    guard = f"; the guard stopped {', '.join(report.failed)}" if report.failed else ""
    figures = ", ".join(f"{k} {totals.get(k, 0)}" for k in ("deleted", "anonymized", "prior_versions", "held"))
    return f"  {at:%Y-%m-%d}  {figures}{guard}{note}"


def fast_forward(config: Path, now: datetime, say: Callable[[str], None] = print) -> None:
    """Run the policy once a month over the ``MONTHS`` months before ``now``, moving the clock."""
    import time_machine

    configure_logging("error")  # one line per run here; the ledger has the details
    loaded = load_config(config)
    holds_path = loaded.holds_path
    shipped = holds_path.read_text(encoding="utf-8")
    placed: date | None = None
    try:
        for months_ago in range(MONTHS, 0, -1):
            at = (now - relativedelta(months=months_ago)).replace(hour=3, minute=15, second=0, microsecond=0)
            note = ""
            # Legal's file this month: the investigation hold placed 8 months ago, extended
            # at 6, lifted at 4 (it then keeps protecting for hold_release_grace).
            if months_ago == 8:
                placed = at.date()
                note = f"; Legal places {INVESTIGATION}"
            elif months_ago == 6:
                note = f"; Legal extends {INVESTIGATION}"
            elif months_ago == 4:
                note = f"; Legal lifts {INVESTIGATION}"
            extra = "" if placed is None or months_ago <= 4 else _investigation(placed, extended=months_ago <= 6)
            holds_path.write_text(shipped + extra, encoding="utf-8")
            with time_machine.travel(at, tick=True):
                report = Runner(load_config(config)).execute()
            say(_line(at, report, note))
            if report.failed:
                later = at + timedelta(minutes=20)
                with time_machine.travel(later, tick=True):
                    allowed = Runner(load_config(config), allow_large=True, reference="CHG-DEMO-REPLAY").execute()
                say(_line(later, allowed, " (the operator allows it once: run --allow-large)"))
    finally:
        holds_path.write_text(shipped, encoding="utf-8")
