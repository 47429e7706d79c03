"""Two runners without a lease on one PostgreSQL target: exhaustion is the selection's, not RETURNING's."""

from __future__ import annotations

import threading

from retentiond.actions.run import RunReport
from tests.stores.sql.conftest import SUPPORT, Env, tickets


class TestBatchesRacingAnotherRunner:
    """Rows another transaction removed make a batch touch fewer rows; the runner goes on to the end."""

    def test_two_runners_delete_every_row_once(self, pg_env: Env) -> None:
        """Both walk the whole target; every row is deleted and audited exactly once; neither fails."""
        pg_env.configure({"support": SUPPORT}, batch_size=50)
        pg_env.insert(tickets, [pg_env.ticket(i, 40 + i % 9) for i in range(1, 4001)])
        runners = [pg_env.runner() for _ in range(2)]
        reports: list[RunReport] = []
        gate = threading.Barrier(2)

        def go(index: int) -> None:
            gate.wait()
            reports.append(runners[index].execute())

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        keys = pg_env.audited_keys(candidates=range(1, 4001))
        assert (set(), list(range(1, 4001))) == (pg_env.ids(), keys)
        assert ([{}, {}], 4000) == ([r.failed for r in reports], sum(r.targets[0].acted for r in reports))
