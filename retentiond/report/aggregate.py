"""Turn verified ledger entries into a :class:`~retentiond.report.model.Report` (pure: no I/O).

One pass over the entries in seq order. Flows (outcomes, runs, guard trips, configuration
digests) count when the entry's time is in the period; holds are followed from the start of the
ledger, so a hold placed before the period and in force during it is shown. Entries of events
this module does not summarize go to an :class:`Extension` that claims them (the erasure
requests of another issue plug in here) or are counted as unsummarized, never dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from retentiond.audit.canonical import format_time, parse_time
from retentiond.audit.ledger import Entry
from retentiond.report.model import (
    AppliedRetention,
    BacklogPoint,
    CategorySummary,
    ConfigDigest,
    ConfiguredCategory,
    ExtraTable,
    Figures,
    GuardTrip,
    HoldHistory,
    Period,
    Report,
    RunSummary,
    Verification,
)
from retentiond.report.periods import applied_period, earliest, hold_state, month_of, months_between, run_months

_CORE_EVENTS = frozenset(
    {
        "config_loaded",
        "config_rejected",
        "hold_placed",
        "hold_changed",
        "hold_released",
        "run_started",
        "batch",
        "guard_tripped",
        "run_finished",
        "run_interrupted",
        "reconciled",
        "checkpoint",
    }
)


class Extension(Protocol):
    """A report section fed by events the core does not read (erasure requests, issue 12).

    Register a factory in :data:`EXTENSIONS`; it gets every entry of its ``events`` (in the period
    or not: a request opened before the period may close in it) and returns its table at the end.
    """

    events: frozenset[str]

    def feed(self, entry: Entry, in_period: bool) -> None:
        """Take one entry of one of ``events``."""

    def table(self) -> ExtraTable | None:
        """Return the section, or None when there is nothing to show."""


#: Factories of the extensions every report runs (none yet: erasure requests add theirs).
EXTENSIONS: tuple[Callable[[], Extension], ...] = ()


def figures_of(fields: Mapping[str, Any]) -> Figures:
    """Return the figures one ``batch`` entry adds (the counting rules of :mod:`.model`)."""
    outcome = fields.get("outcome")
    count = int(fields.get("count") or 0)
    prior = int(fields.get("prior_versions") or 0)
    if outcome == "deleted":
        return Figures(deleted=count - prior, prior_versions=prior)
    if outcome == "anonymized":
        return Figures(anonymized=count - prior, prior_versions=prior)
    if outcome == "held":
        return Figures(held=count)
    if outcome == "blocked":
        return Figures(blocked=count)
    if outcome == "failed":
        return Figures(failed=count)
    if outcome == "skipped":
        return Figures(skipped=count)
    return Figures()


@dataclass
class _Latest:
    """Held/blocked counts of the latest run seen for one category or hold."""

    run_id: str | None = None
    time: str | None = None
    held: int = 0
    blocked: int = 0

    def add(self, run_id: str | None, time: str, held: int, blocked: int) -> None:
        if run_id != self.run_id:
            self.run_id, self.held, self.blocked = run_id, 0, 0
        self.time = time
        self.held += held
        self.blocked += blocked


@dataclass
class _State:
    by_month: dict[str, dict[str, Figures]] = field(default_factory=dict)
    categories: dict[str, CategorySummary] = field(default_factory=dict)
    latest: dict[str, _Latest] = field(default_factory=dict)
    hold_latest: dict[str, _Latest] = field(default_factory=dict)
    runs: dict[str, RunSummary] = field(default_factory=dict)
    applied: dict[tuple[str, str], AppliedRetention] = field(default_factory=dict)
    holds: dict[str, HoldHistory] = field(default_factory=dict)
    hold_events_in_period: set[str] = field(default_factory=set)
    configs: dict[str, ConfigDigest] = field(default_factory=dict)
    config_before: str | None = None  # digest in force when the period began
    last_digest: str | None = None
    guard_trips: list[GuardTrip] = field(default_factory=list)
    unsummarized: Counter[str] = field(default_factory=Counter)
    first: str | None = None
    last: str | None = None
    last_checkpoint_key: str | None = None
    rejections: int = 0
    reconciliations: int = 0


class Aggregator:
    """Feed entries in seq order with :meth:`feed`, then :meth:`report`."""

    def __init__(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        categories: Sequence[str] = (),
        configured: Mapping[str, ConfiguredCategory] | None = None,
        extensions: Sequence[Callable[[], Extension]] = EXTENSIONS,
    ) -> None:
        """``since`` inclusive, ``until`` exclusive; ``categories`` empty = every category."""
        self.since = None if since is None else format_time(since)
        self.until = None if until is None else format_time(until)
        self.only = frozenset(categories)
        self.configured = dict(configured or {})
        self.extensions = [make() for make in extensions]
        self._routes = {event: ext for ext in self.extensions for event in ext.events}
        self.s = _State()

    # -- filters --------------------------------------------------------------------------------

    def _in_period(self, time_text: str) -> bool:
        return (self.since is None or time_text >= self.since) and (self.until is None or time_text < self.until)

    def _wanted(self, category: str | None) -> bool:
        return not self.only or category in self.only

    def _category(self, name: str) -> CategorySummary:
        found = self.s.categories.get(name)
        if found is None:
            found = self.s.categories[name] = CategorySummary(name=name)
        return found

    # -- feeding --------------------------------------------------------------------------------

    def feed(self, entry: Entry) -> None:
        """Take the next entry (seq order)."""
        if self.until is not None and entry.time >= self.until:
            return
        in_period = self._in_period(entry.time)
        event = entry.event
        if event == "checkpoint":
            self.s.last_checkpoint_key = str(entry.fields.get("key_fingerprint"))
        elif event in ("hold_placed", "hold_changed", "hold_released"):
            self._hold(entry, in_period)
        elif event in ("config_loaded", "run_started"):
            self._digest(entry, in_period)
        extension = self._routes.get(event)
        if extension is not None:
            extension.feed(entry, in_period)
        if not in_period:
            return
        if self.s.first is None:
            self.s.first = entry.time
        self.s.last = entry.time
        if event == "batch":
            self._batch(entry)
        elif event == "run_started":
            self._run_started(entry)
        elif event in ("run_finished", "run_interrupted"):
            self._run_closed(entry)
        elif event == "guard_tripped":
            self._guard(entry)
        elif event == "config_rejected":
            self.s.rejections += 1
        elif event == "reconciled":
            self.s.reconciliations += 1
        elif event not in _CORE_EVENTS and extension is None:
            self.s.unsummarized[event] += 1

    def _batch(self, entry: Entry) -> None:
        f = entry.fields
        category = entry.category or "-"
        if not self._wanted(category):
            return
        figures = figures_of(f)
        month = self.s.by_month.setdefault(month_of(entry.time), {})
        month.setdefault(category, Figures()).add(figures)
        summary = self._category(category)
        summary.totals.add(figures)
        action = str(f.get("action"))
        if f.get("outcome") in ("deleted", "anonymized") and action not in summary.actions:
            summary.actions.append(action)
        target = f"{f.get('store')}/{f.get('target')}" + (f"/{f['prefix']}" if f.get("prefix") else "")
        if target not in summary.targets:
            summary.targets.append(target)
        if f.get("outcome") == "failed":
            summary.failure_entries += 1
        latest = self.s.latest.setdefault(category, _Latest())
        latest.add(entry.run_id, entry.time, figures.held, figures.blocked)
        if f.get("outcome") == "held":
            for hold_id in f.get("holds") or ():
                self.s.hold_latest.setdefault(str(hold_id), _Latest()).add(entry.run_id, entry.time, figures.held, 0)
        run = self.s.runs.get(entry.run_id or "")
        if run is not None:
            run.figures.add(figures)

    def _run_started(self, entry: Entry) -> None:
        f = entry.fields
        cutoffs: dict[str, str] = dict(f.get("cutoffs") or {})
        wanted = [c for c in cutoffs if self._wanted(c)]
        if not wanted or entry.run_id is None:
            return
        run_start = parse_time(f["run_start"])
        self.s.runs[entry.run_id] = RunSummary(
            run_id=entry.run_id,
            started=str(f["run_start"]),
            categories=wanted,
            actor=_actor(f),
            reference=_text(f.get("reference")),
            config_sha256=_text(f.get("config_sha256")),
        )
        for category in wanted:
            configured = self.configured.get(category)
            period = applied_period(run_start, parse_time(cutoffs[category]), configured.retain if configured else None)
            applied = self.s.applied.get((category, period))
            if applied is None:
                applied = self.s.applied[(category, period)] = AppliedRetention(period=period, first_run=entry.time)
                self._category(category).applied.append(applied)
            applied.runs += 1
            applied.last_run = entry.time

    def _run_closed(self, entry: Entry) -> None:
        run = self.s.runs.get(entry.run_id or "")
        if run is None:
            return
        f = entry.fields
        run.finished = entry.time
        if entry.event == "run_finished":
            run.status = "finished"
            run.duration_ms = int(f.get("duration_ms") or 0)
            run.failed_categories = [c for c in f.get("failed_categories") or () if self._wanted(c)]
        else:
            run.status = "interrupted"
            run.interrupted_reason = _text(f.get("reason"))
        run.eligible = {c: int(n) for c, n in (f.get("eligible") or {}).items() if self._wanted(c)}

    def _guard(self, entry: Entry) -> None:
        f = entry.fields
        if not self._wanted(entry.category):
            return
        run = self.s.runs.get(entry.run_id or "")
        decision = str(f.get("decision", "stopped"))
        if run is not None:
            run.guard_trips += 1
        self.s.guard_trips.append(
            GuardTrip(
                time=entry.time,
                run_id=entry.run_id,
                category=entry.category or "-",
                target=f"{f.get('store')}/{f.get('target')}",
                would_act=int(f.get("would_act") or 0),
                total=int(f.get("total") or 0),
                limit=int(f.get("limit") or 0),
                decision=decision,
                allowed_by=(run.actor if run is not None else None) if decision == "allowed" else None,
                reference=_text(f.get("reference")) or (run.reference if run is not None else None),
            )
        )

    def _digest(self, entry: Entry, in_period: bool) -> None:
        digest = _text(entry.fields.get("config_sha256"))
        if digest is None:
            return
        if not in_period:
            self.s.config_before = digest  # entries before the period (later ones stop at ``until``)
            return
        found = self.s.configs.get(digest)
        if found is None:
            found = self.s.configs[digest] = ConfigDigest(sha256=digest, first_seen=entry.time, last_seen=entry.time)
        found.last_seen = entry.time
        if entry.event == "config_loaded":
            found.loads += 1
        else:
            found.runs += 1
        self.s.last_digest = digest

    def _hold(self, entry: Entry, in_period: bool) -> None:
        f = entry.fields
        hold_id = str(f.get("hold_id"))
        if in_period:
            self.s.hold_events_in_period.add(hold_id)
        hold = self.s.holds.get(hold_id)
        if entry.event == "hold_released":
            if hold is not None:
                hold.released_at = _text(f.get("released_at"))
                hold.protects_until = _text(f.get("protects_until"))
            return
        subjects = entry.ref_count or None
        if hold is None or entry.event == "hold_placed":
            changes = hold.changes if hold is not None else []
            hold = self.s.holds[hold_id] = HoldHistory(
                hold_id=hold_id,
                kind=str(f.get("kind")),
                categories=[str(c) for c in f.get("categories") or ()],
                placed_at=str(f.get("placed_at")),
                expires_at=_text(f.get("expires_at")),
                recorded=entry.time,
                subjects=subjects,
                placed_by=_text(f.get("placed_by")),
                reference=_text(f.get("reference")),
                changes=changes,
            )
            return
        hold.kind = str(f.get("kind"))
        hold.categories = [str(c) for c in f.get("categories") or ()]
        hold.placed_at = str(f.get("placed_at"))
        hold.expires_at = _text(f.get("expires_at"))
        hold.subjects = subjects
        hold.placed_by = _text(f.get("placed_by")) or hold.placed_by
        hold.reference = _text(f.get("reference")) or hold.reference
        hold.changes.append(entry.time)

    # -- the result -----------------------------------------------------------------------------

    def report(self, *, ledger_id: str, verification: Verification, generated_at: datetime) -> Report:
        """Return the report of everything fed."""
        s = self.s
        end = self.until or format_time(generated_at)
        for name in self.configured:
            if self._wanted(name):
                self._category(name).configured = self.configured[name]
        for name, latest in s.latest.items():
            summary = self._category(name)
            summary.held_latest, summary.blocked_latest, summary.latest_run = latest.held, latest.blocked, latest.time
        totals = Figures()
        for summary in s.categories.values():
            totals.add(summary.totals)
        runs = sorted(s.runs.values(), key=lambda r: r.started)
        return Report(
            ledger_id=ledger_id,
            generated_at=format_time(generated_at),
            period=Period(self.since, self.until, tuple(sorted(self.only))),
            verification=verification,
            first_entry=s.first,
            last_entry=s.last,
            months=months_between(month_of(s.first), month_of(s.last)) if s.first and s.last else [],
            totals=totals,
            by_month={m: dict(sorted(c.items())) for m, c in sorted(s.by_month.items())},
            categories=dict(sorted(s.categories.items())),
            runs=runs,
            run_months=run_months(runs),
            guard_trips=s.guard_trips,
            holds=self._holds(end),
            backlog=[
                BacklogPoint(run.run_id, run.started, category, count)
                for run in runs
                for category, count in sorted(run.eligible.items())
            ],
            configs=self._configs(),
            config_rejections=s.rejections,
            last_checkpoint_key=s.last_checkpoint_key,
            reconciliations=s.reconciliations,
            extras=[t for t in (ext.table() for ext in self.extensions) if t is not None],
            unsummarized=dict(sorted(s.unsummarized.items())),
        )

    def _configs(self) -> list[ConfigDigest]:
        out = list(self.s.configs.values())
        before = self.s.config_before
        if before is not None and before not in self.s.configs:
            # In force when the period began, recorded before it.
            out.insert(0, ConfigDigest(sha256=before, first_seen="before the period", last_seen="before the period"))
        return out

    def _holds(self, end: str) -> list[HoldHistory]:
        out: list[HoldHistory] = []
        start = self.since
        for hold in self.s.holds.values():
            if self.only and "*" not in hold.categories and not self.only & set(hold.categories):
                continue
            stop = earliest(hold.expires_at, hold.protects_until)
            hold.in_force = hold.placed_at < end and (stop is None or start is None or stop > start)
            hold.state = hold_state(hold, end)
            latest = self.s.hold_latest.get(hold.hold_id)
            hold.held_latest = latest.held if latest is not None else 0
            if hold.in_force or hold.hold_id in self.s.hold_events_in_period:
                out.append(hold)
        return sorted(out, key=lambda h: (h.placed_at, h.hold_id))


def aggregate(
    entries: Iterable[Entry],
    *,
    ledger_id: str,
    verification: Verification,
    generated_at: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    categories: Sequence[str] = (),
    configured: Mapping[str, ConfiguredCategory] | None = None,
    given_config_sha256: str | None = None,
    extensions: Sequence[Callable[[], Extension]] = EXTENSIONS,
) -> Report:
    """Return the report of ``entries`` (seq order) for the period and categories.

    ``configured``/``given_config_sha256`` describe the configuration file given to the command,
    if any: the report says whether it is the one the ledger recorded as in force.
    """
    aggregator = Aggregator(
        since=since, until=until, categories=categories, configured=configured, extensions=extensions
    )
    for entry in entries:
        aggregator.feed(entry)
    report = aggregator.report(ledger_id=ledger_id, verification=verification, generated_at=generated_at)
    if given_config_sha256 is not None:
        report.given_config_sha256 = given_config_sha256
        in_force = aggregator.s.last_digest or aggregator.s.config_before
        report.given_config_in_force = in_force == given_config_sha256
    return report


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _actor(fields: Mapping[str, Any]) -> str | None:
    """Return who started a run, as ``run_started`` records it: the unit, else the user (via sudo)."""
    unit, user, sudo = (_text(fields.get(k)) for k in ("actor_unit", "actor_user", "actor_sudo_user"))
    if unit:
        return unit
    if user and sudo:
        return f"{sudo} (as {user})"
    return user or _text(fields.get("actor"))
