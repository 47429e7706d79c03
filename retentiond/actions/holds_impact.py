"""Legal's holds measured against the stores: ``holds impact``, ``holds add --preview``,
``holds list --count`` and the subject checks of ``holds check --connect``.

Counts only, through the store protocol (:class:`~retentiond.stores.base.Worker`) with the
statements ``plan`` and the batches use: a change's impact is, per target, the distinct records
the batches' condition selects with the holds after the change and not with the holds before it,
both as they protect at the instant counted (release grace and hold ends included). Later
instants are counted with the cutoffs of a run at that instant (``ExpirySelection.at``).
Subjects are handed to the stores and compared there; they are never logged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType

from retentiond.actions import holds_state
from retentiond.actions.holds_change import HoldChangePlan
from retentiond.audit.refs import canonical_key
from retentiond.config.durations import RetentionPeriod
from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.errors import HoldsUnavailable
from retentiond.policy.hold_changes import HoldsMemory, advance
from retentiond.policy.holds import protecting, view_memory
from retentiond.stores import registry
from retentiond.stores.base import ExpirySelection, RunContext, Store, Worker

#: Days after the release at which ``holds impact`` counts again what retention ends bring.
HORIZONS = (30, 90, 365)


@dataclass
class TargetFigures:
    """Figures of one category's target: ``figures`` maps a column name to a count."""

    category: str
    store: str
    target: str
    prefix: str | None
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """Return ``store/target`` (with the prefix where the kind has one)."""
        return f"{self.store}/{self.target}" + (f"/{self.prefix}" if self.prefix else "")


class CountingStores:
    """Every store of the configuration opened for counting: nothing is written, no ledger is opened."""

    def __init__(self, loaded: LoadedConfig, now: datetime) -> None:
        self.loaded = loaded
        self.settings = loaded.settings
        started = time.monotonic()
        ctx = RunContext(
            loaded=loaded,
            run_id=str(uuid.uuid4()),
            run_start=now,
            categories=tuple(self.settings.categories),
            writes=False,
            clock=lambda: now + timedelta(seconds=time.monotonic() - started),
            pseudonym_key=b"retentiond-plan-only-key",
            key_text=canonical_key,
        )
        self.stores: dict[str, Store] = {}
        targets = [t for c in self.settings.categories for t in registry.targets(self.settings, c)]
        try:
            for kind in registry.kinds():
                for name in sorted({t.store for t in targets if t.kind == kind.kind}):
                    self.stores[name] = kind.open(name, ctx)
                    self.stores[name].prepare()
        except BaseException:
            self.close()
            raise

    def workers(self, category: str, at: datetime) -> list[Worker]:
        """Return the workers of ``category``'s targets for a run at ``at``, in config order.

        Raises:
            ConfigError: a target is unusable.
            TemporaryFailure: a store is unreachable.
        """
        selection = ExpirySelection.at(self.settings, at)
        built: dict[str, list[Worker]] = {}
        ordered: list[Worker] = []
        for target in registry.targets(self.settings, category):
            if target.store not in built:
                built[target.store] = list(self.stores[target.store].workers(category, selection))
            ordered.append(built[target.store].pop(0))
        return ordered

    def close(self) -> None:
        """Release every store."""
        for store in self.stores.values():
            store.close()
        self.stores = {}

    def __enter__(self) -> CountingStores:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _figures(worker: Worker) -> TargetFigures:
    return TargetFigures(worker.category, worker.store, worker.target_name, worker.prefix)


# -- holds over time ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldsTimeline:
    """The holds of a file state after retentiond recorded it: what protects at any instant."""

    memory: HoldsMemory
    holds: tuple[Hold, ...]
    grace: RetentionPeriod

    def at(self, when: datetime) -> list[Hold]:
        """Return the definitions protecting at ``when`` (under their protector ids)."""
        return protecting(view_memory(self.memory, self.holds, when, self.grace))


def stored_memory(loaded: LoadedConfig, warnings: list[str]) -> HoldsMemory:
    """Return what retentiond recorded of the holds (empty, with a warning, when Legal may not read it).

    Raises:
        HoldsUnavailable: the state is damaged.
    """
    try:
        return holds_state.read_memory(loaded.state_dir)
    except HoldsUnavailable as exc:
        if not isinstance(exc.__cause__, PermissionError):
            raise
        warnings.append(f"{exc}: holds released in the last grace period are not counted")
        return HoldsMemory()


def timelines(
    loaded: LoadedConfig, plan: HoldChangePlan, now: datetime, warnings: list[str]
) -> tuple[HoldsTimeline, HoldsTimeline]:
    """Return the holds without the change and with it, as if retentiond recorded it at ``now``.

    The change is taken as approved (its figures are what dual control is asked to release).
    """
    daemon = loaded.settings.daemon
    grace = daemon.hold_release_grace
    stored = stored_memory(loaded, warnings)
    old, _ = advance(stored, plan.old_holds, now, grace, approval_required=daemon.hold_release_requires_approval)
    new, _ = advance(old, plan.new_holds, now, grace, approval_required=False)
    return HoldsTimeline(old, plan.old_holds, grace), HoldsTimeline(new, plan.new_holds, grace)


# -- impact of a change ------------------------------------------------------------------------


@dataclass
class Impact:
    """What a change releases: per target ``released`` at ``release_at``, and per horizon (``30d``...)
    how many more by then; ``kept`` counts records the change protects that would otherwise go."""

    hold_id: str
    now: datetime
    release_at: datetime
    after_grace: bool
    grace: RetentionPeriod
    targets: list[TargetFigures]
    warnings: list[str] = field(default_factory=list)

    def total(self, column: str) -> int:
        """Return the sum of ``column`` over the targets."""
        return sum(t.figures.get(column, 0) for t in self.targets)


def horizon_columns() -> list[str]:
    """Return the names of the horizon columns (``30d``, ``90d``, ``365d``)."""
    return [f"{d}d" for d in HORIZONS]


def impact(loaded: LoadedConfig, plan: HoldChangePlan, now: datetime, stores: CountingStores) -> Impact:
    """Return the figures of ``plan`` counted in ``stores`` (every category: a hold protects through
    any covering claim).

    Raises:
        ConfigError: a target is unusable.
        TemporaryFailure: a store is unreachable.
    """
    warnings: list[str] = []
    old, new = timelines(loaded, plan, now, warnings)
    grace = loaded.settings.daemon.hold_release_grace
    after_grace = plan.narrowing.narrows
    release_at = now + grace.delta if after_grace else now
    instants = [release_at, *(release_at + timedelta(days=d) for d in HORIZONS)]
    columns = ["released", *horizon_columns()]
    hold = plan.new or plan.old
    assert hold is not None
    rows: list[TargetFigures] = []
    for category in loaded.settings.categories:
        per_target: list[TargetFigures] = []
        for i, (column, at) in enumerate(zip(columns, instants, strict=True)):
            before, after = old.at(at), new.at(at)
            for j, worker in enumerate(stores.workers(category, at)):
                if i == 0:
                    per_target.append(_figures(worker))
                    per_target[j].figures["kept"] = worker.released(after, before)
                per_target[j].figures[column] = worker.released(before, after)
        for row in per_target:
            figures = row.figures
            for column in horizon_columns():
                figures[column] = max(0, figures[column] - figures["released"])
            if hold.covers_category(category) or any(figures.values()):
                rows.append(row)
    return Impact(hold.id, now, release_at, after_grace, grace, rows, warnings)


# -- protection now ----------------------------------------------------------------------------


def preview(loaded: LoadedConfig, hold: Hold, now: datetime, stores: CountingStores) -> list[TargetFigures]:
    """Return per target of the hold's categories the records ``hold`` alone would keep from a run
    at ``now`` (``protected``): the figure a run audits as ``held`` for it.

    Raises:
        ConfigError, TemporaryFailure: as :meth:`CountingStores.workers`.
    """
    rows: list[TargetFigures] = []
    for category in loaded.settings.categories:
        if not hold.covers_category(category):
            continue
        for worker in stores.workers(category, now):
            row = _figures(worker)
            row.figures["protected"] = worker.held_counts([hold]).get(hold.id, 0)
            rows.append(row)
    return rows


def protected_now(holds: Sequence[Hold], now: datetime, stores: CountingStores) -> dict[str, int]:
    """Return, per protector id of ``holds`` (those protecting at ``now``), the records they keep
    from a run at ``now`` over every target (the run's ``held`` figures, summed).

    Raises:
        ConfigError, TemporaryFailure: as :meth:`CountingStores.workers`.
    """
    out = {h.id: 0 for h in holds}
    for category in stores.settings.categories:
        if not any(h.covers_category(category) for h in holds):
            continue
        for worker in stores.workers(category, now):
            for hold_id, n in worker.held_counts(holds).items():
                out[hold_id] = out.get(hold_id, 0) + n
    return out


# -- subjects against the stored values --------------------------------------------------------


@dataclass
class SubjectMatches:
    """One subject of one hold: records whose subject is exactly it, and equal ignoring case."""

    hold_id: str
    number: int
    of: int
    subject: str
    exact: int = 0
    ignoring_case: int = 0


def subject_matches(holds: Sequence[Hold], stores: CountingStores, now: datetime) -> Iterator[SubjectMatches]:
    """Yield, for each subject of each hold in force, its matches over the targets of the hold's
    categories that have a subject (holds with no such target yield nothing).

    Raises:
        ConfigError, TemporaryFailure: as :meth:`CountingStores.workers`.
    """
    for hold in holds:
        if hold.subjects is None or hold.lifted:
            continue
        subjects = list(dict.fromkeys(hold.subjects))
        found = {s: SubjectMatches(hold.id, n, len(hold.subjects), s) for n, s in enumerate(subjects, start=1)}
        with_subject = False
        for category in stores.settings.categories:
            if not hold.covers_category(category):
                continue
            for worker in stores.workers(category, now):
                counts = worker.subject_counts(subjects)
                if counts is None:
                    continue
                with_subject = True
                for subject, (exact, folded) in counts.items():
                    found[subject].exact += exact
                    found[subject].ignoring_case += folded
        if with_subject:
            yield from found.values()


def subject_warnings(matches: Sequence[SubjectMatches]) -> list[str]:
    """Return a warning per subject that matches no record, or whose case differs from stored values."""
    out: list[str] = []
    for m in matches:
        name = f"hold {m.hold_id}: subject {m.number} of {m.of} ({m.subject!r})"
        if m.ignoring_case == 0:
            out.append(f"{name} matches no record in any target of its categories")
        elif m.exact == 0:
            out.append(
                f"{name} matches no record as written but {m.ignoring_case} record(s) ignoring case: "
                "check its case (subjects compare exactly)"
            )
        elif m.ignoring_case > m.exact:
            out.append(
                f"{name} matches {m.exact} record(s); {m.ignoring_case - m.exact} more differ only in case "
                "and are not held"
            )
    return out


__all__ = [
    "HORIZONS",
    "CountingStores",
    "HoldsTimeline",
    "Impact",
    "SubjectMatches",
    "TargetFigures",
    "horizon_columns",
    "impact",
    "preview",
    "protected_now",
    "subject_matches",
    "subject_warnings",
]
