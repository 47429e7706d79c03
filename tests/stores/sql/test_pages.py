"""Batches bounded by heap page ranges (PostgreSQL): dense targets walk pages, sparse ones the index."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.stores.sql import pages
from retentiond.stores.sql.worker import TargetWorker
from tests.stores.sql.conftest import SUPPORT, Env, hold, tickets

pytestmark = pytest.mark.pg

# SUPPORT without its status filter and history table: every closed ticket is due after 30 days.
_TARGET = {k: v for k, v in SUPPORT["sql"][0].items() if k not in ("match", "history")}
DELETE_ALL_CLOSED: dict[str, Any] = {**SUPPORT, "sql": [_TARGET]}


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count page-range batches (the number of rows each touched)."""
    calls: list[int] = []
    real: Callable[..., Any] = pages.act

    def act(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append(result.touched)
        return result

    monkeypatch.setattr(pages, "act", act)
    return calls


def _seed(env: Env, due: int, young: int, held: int) -> None:
    rows = [env.ticket(i, 40, account="acct_h" if i < held else f"acct_{i % 50}") for i in range(due)]
    rows += [env.ticket(due + i, 5) for i in range(young)]
    env.insert(tickets, rows)


class TestPageWalk:
    """A dense target's batches are page ranges; every due row goes once, held and young rows stay."""

    def test_dense_target_walks_pages(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """2,000 due rows of 3,000 (10 held) in batches of about 200 rows, each audited exactly once."""
        calls = _spy(monkeypatch)
        _seed(pg_env, due=2000, young=1000, held=10)
        pg_env.configure({"support": DELETE_ALL_CLOSED}, batch_size=200)
        pg_env.write_holds([hold("LIT-1", ["support"], subjects=["acct_h"])])

        report = pg_env.run()

        expected = list(range(10, 2000))
        assert ({}, expected) == (report.failed, pg_env.audited_keys(candidates=range(3000), outcome="deleted"))
        assert set(range(10)) | set(range(2000, 3000)) == pg_env.ids()
        assert len(calls) >= 10 and max(calls) <= 2 * 200 and sum(calls) == 1990

    def test_sparse_target_walks_the_index(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """50 due rows of 1,000 (5 %): keyset batches on the age index, no page range."""
        calls = _spy(monkeypatch)
        _seed(pg_env, due=50, young=950, held=0)
        pg_env.configure({"support": DELETE_ALL_CLOSED}, batch_size=20)

        report = pg_env.run()

        assert ([], {}, list(range(50))) == (
            calls,
            report.failed,
            pg_env.audited_keys(candidates=range(1000), outcome="deleted"),
        )

    def test_pages_added_after_the_start_are_walked(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
        """The walk ends at the table's size read by its last batch, not the size it started with."""
        monkeypatch.setattr(TargetWorker, "relation_pages", lambda self: 1)
        calls = _spy(monkeypatch)
        _seed(pg_env, due=1500, young=0, held=0)
        pg_env.configure({"support": DELETE_ALL_CLOSED}, batch_size=100)

        report = pg_env.run()

        assert ({}, set(), 1500) == (report.failed, pg_env.ids(), sum(calls))


class TestCompositeKey:
    """A key of several columns whose text SQL writes takes the one-statement batches too."""

    def _refs(self, env: Env) -> dict[str, int]:
        """Return each ticket's ref under the key (id, closed_at), by ref."""
        with env.engine.connect() as conn:
            keyed = conn.execute(sa.select(tickets.c.id, tickets.c.closed_at)).all()
        return {env.refs.sql("app", "tickets", [i, at]): i for i, at in keyed}

    @pytest.mark.parametrize("dense", [True, False])
    def test_every_due_row_audited_once(self, pg_env: Env, monkeypatch: pytest.MonkeyPatch, dense: bool) -> None:
        """Page ranges (dense) or keyset statements (sparse): the refs are those of (id, closed_at), once each."""
        calls = _spy(monkeypatch)

        def no_python_batches(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a batch took the path whose texts Python makes")

        monkeypatch.setattr(TargetWorker, "act_on", no_python_batches)
        due = 600 if dense else 30
        _seed(pg_env, due=due, young=1000 - due, held=5)
        with pg_env.engine.begin() as conn:  # a key must identify one row: the pair is unique (test DDL)
            conn.execute(sa.text("CREATE UNIQUE INDEX tickets_pair ON tickets (id, closed_at)"))
        refs = self._refs(pg_env)
        composite = {**_TARGET, "key": ["id", "closed_at"]}
        pg_env.configure({"support": {**DELETE_ALL_CLOSED, "sql": [composite]}}, batch_size=50)
        pg_env.write_holds([hold("LIT-1", ["support"], subjects=["acct_h"])])

        report = pg_env.run()

        assert {} == report.failed
        assert list(range(5, due)) == sorted(refs[r] for r in pg_env.audited())
        assert set(range(5)) | set(range(due, 1000)) == pg_env.ids()
        assert (len(calls) > 0) == dense
