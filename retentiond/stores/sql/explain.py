"""``retentiond explain`` for a SQL row: why it is kept or would be acted on, in an auditor's words.

It applies the pure decision function (``retentiond.policy.decide``) to the row as it is now;
the statements of a run implement the same function in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from retentiond.config.holds import Hold
from retentiond.config.loader import LoadedConfig
from retentiond.errors import UsageError
from retentiond.policy.decide import Coverage, Row, Verdict, decide
from retentiond.stores.base import ExpirySelection
from retentiond.stores.sql.errors import connection_error
from retentiond.stores.sql.outbox import Outbox
from retentiond.stores.sql.store import StoreHandle, store_engine

_WORDS = {
    Verdict.ACT: "would be {action}d by the next run",
    Verdict.NOT_COVERED: "is not covered: the category's match filters exclude it",
    Verdict.NOT_EXPIRED: "is kept: not older than the cutoff (or its clock has not started)",
    Verdict.HELD: "is kept: held by {holds}",
    Verdict.LONGER_RETENTION: "is kept: {kept_for} retains it longer (longest retention wins)",
}


@dataclass
class RowExplanation:
    """The reasoning for one row."""

    store: str
    table: str
    found: bool
    at: datetime
    lines: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return {
            "store": self.store,
            "table": self.table,
            "found": self.found,
            "at": self.at.isoformat(),
            "categories": self.lines,
        }

    def render(self) -> str:
        """Return the explanation as sentences."""
        if not self.found:
            return (
                f"No row with that key in {self.store}/{self.table} (nothing to explain; see `retentiond audit find`)."
            )
        out = [f"Row of {self.store}/{self.table}, evaluated at {self.at.isoformat(timespec='seconds')}:"]
        for line in self.lines:
            out.append(
                f"- category {line['category']} ({line['action']} after {line['retain']}): "
                f"age column {line['age_column']} = {line['age'] or 'NULL'}, "
                f"cutoff {line['cutoff']} -> {line['decision']}"
            )
        return "\n".join(out)


def explain_row(
    loaded: LoadedConfig, store: str, table: str, key: list[str], holds_at: Callable[[datetime], Sequence[Hold]]
) -> RowExplanation:
    """Return the explanation for the row of ``store``/``table`` with primary key ``key``.

    ``holds_at(now)`` returns the holds protecting at ``now`` (read only when the row exists).

    Raises:
        UsageError: no category names that table, or the key has the wrong number of parts.
        TemporaryFailure: the store is unreachable.
    """
    settings = loaded.settings
    claims = [
        (name, i, t)
        for name, c in settings.categories.items()
        for i, t in enumerate(c.sql)
        if t.store == store and t.table == table
    ]
    if not claims:
        raise UsageError(f"no category names table {table!r} in store {store!r}")
    now = datetime.now(UTC)
    cuts = ExpirySelection.at(settings, now).cutoffs
    engine = store_engine(loaded, store)
    handle = StoreHandle(store, engine, Outbox(engine))
    try:
        bound = {(n, i): handle.bind(n, i, loaded) for n, i, _ in claims}
        first = bound[(claims[0][0], claims[0][1])]
        if len(key) != len(first.key):
            raise UsageError(f"table {table!r} has a key of {len(first.key)} column(s); give --key that many times")
        values = [_convert(c, v) for c, v in zip(first.key, key, strict=True)]
        try:
            with engine.connect() as conn:
                match = [c == v for c, v in zip(first.key, values, strict=True)]
                row = conn.execute(
                    sa.select(*_read_columns(first.table, [t for _, _, t in claims])).where(*match)
                ).first()
        except sa.exc.OperationalError as exc:
            raise connection_error(store, exc) from None
    finally:
        engine.dispose()
    result = RowExplanation(store, table, row is not None, now)
    if row is None:
        return result
    mapping = dict(row._mapping)
    holds = list(holds_at(now))
    coverages = {}
    for name, i, target in claims:
        b = bound[(name, i)]
        cut = cuts[name]
        coverages[(name, i)] = Coverage(
            name, settings.categories[name].action, cut, target.age_column, dict(target.match or {})
        )
    facts = Row(
        values={k: _aware(v, first) for k, v in mapping.items()},
        subject=None
        if first.subject is None or mapping.get(first.subject.name) is None
        else str(mapping[first.subject.name]),
    )
    for name, i, target in claims:
        acting = coverages[(name, i)]
        others = [c for k, c in coverages.items() if k != (name, i)]
        b = bound[(name, i)]
        decision = decide(facts, acting, others, holds, now, has_subject=b.subject is not None)
        category = settings.categories[name]
        # "{action}d": delete -> deleted, anonymize -> anonymized.
        words = _WORDS[decision.verdict].format(
            action=category.action, holds=", ".join(decision.holds), kept_for=", ".join(decision.kept_for)
        )
        # As an aware UTC instant: SQLite (and naive columns) store wall time without a zone.
        age = _aware(mapping.get(target.age_column), b)
        result.lines.append(
            {
                "category": name,
                "action": category.action,
                "retain": str(category.retain),
                "age_column": target.age_column,
                "age": age.isoformat() if isinstance(age, datetime) else None,
                "cutoff": cuts[name].isoformat(timespec="seconds"),
                "verdict": decision.verdict.value,
                "holds": list(decision.holds),
                "kept_for": list(decision.kept_for),
                "decision": words,
            }
        )
    return result


def _read_columns(table: sa.Table, targets: list[Any]) -> list[sa.Column[Any]]:
    """Return the columns the decision reads (key, age, subject, match of every claim): a role
    granted SELECT on just those (``retentiond print-grants``) may explain."""
    names: list[str] = []
    for target in targets:
        for name in (*target.key, target.age_column, target.subject_column, *(target.match or {})):
            if name is not None and name not in names and name in table.c:
                names.append(name)
    return [table.c[n] for n in names]


def _convert(column: sa.Column[Any], text: str) -> Any:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return text
    if python_type is int:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"key column {column.name!r} is an integer; {text!r} is not") from None
    return text


def _aware(value: Any, bound: Any) -> Any:
    """Return naive timestamps as aware instants in the target's zone (SQLite: UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        zone = bound.age_zone or UTC
        return value.replace(tzinfo=zone).astimezone(UTC)
    return value
