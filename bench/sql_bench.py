"""SQL engine benchmark: retentiond vs raw statements on identical copies of the data, interleaved.

Prints figures and a markdown table for docs/performance.md; it is not a test. Needs the local
PostgreSQL (127.0.0.1:5432, trust auth, or ``RETENTIOND_TEST_DATABASE_URL`` as an admin URL);
creates and drops its own ``rtd_bench_*`` databases.

    .venv/bin/python bench/sql_bench.py                      # 1,000,000 rows, 3 repetitions, 10 M-ref find
    .venv/bin/python bench/sql_bench.py --rows 200000 --repeat 2 --find-refs 1000000 --rss-rows 200000,1000000
    .venv/bin/python bench/sql_bench.py --only raw_delete,rtd_delete --skip-latency   # a subset

Data: ``--rows`` events (``id``, ``account_id``, ``created_at``, ``email``, ``name``, ``payload``)
spread evenly over the 12 whole months before the current month; retention 6 months, so half
of the rows (plus the current day of the month's worth) are expired; 1 % of 10,000 subjects under a
legal hold; indexes on ``created_at`` and ``account_id``. The same rows are seeded twice: a plain
table (primary key ``id``) and a table range-partitioned by month on ``created_at`` (12
partitions, the older 6 wholly expired, the 7th partly; primary key ``(id, created_at)``), where only one
subject is held, and all its rows are in one expired partition.

Scenarios (``--only`` takes these names), each on a fresh ``CREATE DATABASE … TEMPLATE`` copy:

* ``raw_delete``: ``DELETE … WHERE created_at < cutoff`` (the 1.0× reference of the deletes);
* ``raw_hold_delete``: the same sparing the held subjects (an anti-join on a table of them);
* ``batched_loop``: the best plain loop (one per ``--loop-batches`` entry, default 5000,10000;
  the fastest is the second reference): ``DELETE … WHERE id = ANY(ARRAY(SELECT id … WHERE
  <expired, not held, (created_at, id) after the last batch> ORDER BY created_at, id LIMIT n))
  AND <expired, not held> RETURNING created_at, id``, one transaction per batch, no audit;
* ``rtd_delete``: ``retentiond run`` deleting (one per ``--batch-sizes`` entry, ``rtd_delete@5000``);
* ``raw_update``: ``UPDATE … SET email = NULL, name = NULL WHERE created_at < cutoff`` (the
  reference of the anonymizations); ``rtd_anon_null`` / ``rtd_anon_hmac``: ``retentiond run``
  anonymizing both columns with the ``null`` / ``hmac`` strategy;
* ``raw_part_delete``: the raw ``DELETE`` on the partitioned table (the reference of
  ``rtd_part``: ``retentiond run`` deleting from the partitioned table, whole partitions or batches).

``--repeat N`` repetitions each run every scenario once, in an order rotated between
repetitions. Reported per scenario: median seconds, range, rows/s, and the rows/s ratio to the
reference from the medians, with the range of the per-repetition ratios. Every retentiond run
(and the raw hold-aware and batched deletes) is checked: the seeded rows left (or left untouched,
for anonymize) must be exactly those the raw hold-aware delete leaves.

Also: ``latency`` (unless ``--skip-latency``): a concurrent writer (single-row UPDATEs of random
expired rows and INSERTs, 2 ms apart) at idle and during one run each of raw_delete,
batched_loop, rtd_delete, rtd_anon_null and rtd_part: p50/p99/max wait. ``find`` (unless
``--skip-find``): build a PostgreSQL ledger of ``--find-refs`` refs (batches of 5,000 through
``Ledger.append``) and time ``audit find``'s lookup of a ref in an early, middle and last batch
and of an absent ref. ``rss`` (unless ``--skip-rss``): peak RSS of ``retentiond run`` deleting at
each of ``--rss-rows``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa
from _bench_common import (
    HELD,
    RETAIN,
    State,
    Writer,
    admin_engine,
    db_url,
    drop,
    expected_state,
    pg_dsn,
    recreate,
    run_retentiond,
    seed,
    span,
    state,
    write_config,
)

from retentiond.audit import Action, Batch, BatchId, Ledger, Outcome, RefMaker
from retentiond.audit.find import find_record
from retentiond.config.durations import RetentionPeriod

SOURCE, PART_SOURCE, RSS_SOURCE = "rtd_bench_source", "rtd_bench_source_part", "rtd_bench_source_rss"
RUN_DB, LEDGER_DB, FIND_DB = "rtd_bench_run", "rtd_bench_ledger", "rtd_bench_find"
RAW_DELETE = "DELETE FROM events WHERE created_at < :cutoff"
RAW_HOLD_DELETE = (
    "DELETE FROM events e WHERE created_at < :cutoff "
    "AND NOT EXISTS (SELECT 1 FROM bench_held h WHERE h.account_id = e.account_id)"
)
LOOP_DELETE = (
    "DELETE FROM events WHERE id = ANY(ARRAY("
    " SELECT id FROM events WHERE created_at < %(cutoff)s AND account_id <> ALL(%(held)s::text[])"
    " AND created_at >= %(lc)s AND (created_at, id) > (%(lc)s, %(li)s) ORDER BY created_at, id LIMIT %(n)s))"
    " AND created_at < %(cutoff)s AND account_id <> ALL(%(held)s::text[]) RETURNING created_at, id"
)
RAW_UPDATE = "UPDATE events SET email = NULL, name = NULL WHERE created_at < :cutoff"
LATENCY = ("idle", "raw_delete", "batched_loop", "rtd_delete", "rtd_anon_null", "rtd_part")


@dataclass
class Scenario:
    """One measured way of purging: what runs, on which source, compared with which reference."""

    name: str
    label: str
    source: str
    reference: str
    run: Callable[[str], tuple[int | None, float, int | None]]  # db -> (rows or None, seconds, RSS KiB)
    check: str = ""  # "delete" / "anonymize": compare the rows left with the hold-aware expectation
    samples: list[tuple[int, float]] = field(default_factory=list)
    rss_kib: int = 0

    @property
    def base(self) -> str:
        """Return the name without its ``@batch`` suffix."""
        return self.name.split("@")[0]


class Bench:
    """The scenarios of one invocation and what they share: admin engine, clock, temp dir."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.admin = admin_engine()
        # The real clock: retentiond refuses a ``now`` far from the database's clock.
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.insert_at = span(self.now)[1] - timedelta(days=1)  # the writer's rows: in the newest partition
        self.cutoff = RetentionPeriod.parse(RETAIN).before(self.now)
        self.states: dict[str, State] = {}
        self.expected: dict[str, State] = {}
        self.runs = 0

    # -- the ways of purging --------------------------------------------------------------
    def raw(self, statement: str) -> Callable[[str], tuple[int | None, float, int | None]]:
        """Return a scenario body running ``statement`` (one transaction, commit timed)."""

        def body(db: str) -> tuple[int | None, float, int | None]:
            engine = sa.create_engine(db_url(db))
            with engine.connect() as conn:
                started = time.perf_counter()
                count = conn.execute(sa.text(statement), {"cutoff": self.cutoff}).rowcount
                conn.commit()
                elapsed = time.perf_counter() - started
            engine.dispose()
            return count, elapsed, None

        return body

    def batched_loop(self, batch: int) -> Callable[[str], tuple[int | None, float, int | None]]:
        """Return a scenario body deleting the expired, unheld rows in keyset batches of ``batch``.

        One transaction per batch, no audit; psycopg directly (no SQLAlchemy rows), as lean as a
        plain loop gets. The keys come back (``RETURNING``) as an audited loop would need them.
        Custom plans, as retentiond's batches use: psycopg prepares the statement after five
        runs, and the generic plan walks the held array per row (about 1.5x slower).
        """

        def body(db: str) -> tuple[int | None, float, int | None]:
            last: tuple[datetime, int] = (span(self.now)[0] - timedelta(days=1), 0)
            total = 0
            with psycopg.connect(pg_dsn(db), options="-c plan_cache_mode=force_custom_plan") as conn:
                started = time.perf_counter()
                while True:
                    params = {"cutoff": self.cutoff, "held": list(HELD), "lc": last[0], "li": last[1], "n": batch}
                    with conn.cursor() as cur:
                        cur.execute(LOOP_DELETE, params)
                        rows = cur.fetchall()
                    conn.commit()
                    if not rows:
                        break
                    total += len(rows)
                    last = max(rows)  # RETURNING has no order: the batch's greatest (created_at, id)
                elapsed = time.perf_counter() - started
            return total, elapsed, None

        return body

    def retentiond(
        self, action: str, strategy: str, batch: int, partitioned: bool
    ) -> Callable[[str], tuple[int | None, float, int | None]]:
        """Return a scenario body running ``retentiond run`` with a fresh ledger database."""

        def body(db: str) -> tuple[int | None, float, int | None]:
            recreate(self.admin, LEDGER_DB)
            # An empty ledger with its schema, as a deployment has one: creating the tables and
            # triggers (~0.15 s) is set-up, not purging, and the raw statements pay for none.
            Ledger.open(db_url(LEDGER_DB)).close()
            self.runs += 1
            config = write_config(
                self.tmp / f"run{self.runs}",
                db,
                LEDGER_DB,
                action=action,
                batch_size=batch,
                strategy=strategy,
                partitioned=partitioned,
            )
            result = run_retentiond(config)
            return None, result.seconds, result.rss_kib

        return body

    # -- scenario list ------------------------------------------------------------------
    def scenarios(self) -> list[Scenario]:
        """Return the scenarios selected by ``--only`` (all when it is not given)."""
        d, u = "raw_delete", "raw_update"
        out = [
            Scenario(d, "raw `DELETE … WHERE created_at < cutoff`", SOURCE, d, self.raw(RAW_DELETE)),
            Scenario(
                "raw_hold_delete",
                "raw hold-aware single DELETE (anti-join on held subjects)",
                SOURCE,
                d,
                self.raw(RAW_HOLD_DELETE),
                "delete",
            ),
        ]
        for b in self.args.loop_batches:
            out.append(
                Scenario(
                    f"batched_loop@{b}",
                    f"plain batched hold-aware loop (`= ANY(ARRAY(…))`, batch {b:,}, no audit)",
                    SOURCE,
                    d,
                    self.batched_loop(b),
                    "delete",
                )
            )
        for b in self.args.batch_sizes:
            out.append(
                Scenario(
                    f"rtd_delete@{b}",
                    f"**`retentiond run`** delete, batch {b:,}",
                    SOURCE,
                    d,
                    self.retentiond("delete", "", b, False),
                    "delete",
                )
            )
        out.append(Scenario(u, "raw `UPDATE … SET email = NULL, name = NULL`", SOURCE, u, self.raw(RAW_UPDATE)))
        for b in self.args.batch_sizes:
            for strategy in ("null", "hmac"):
                out.append(
                    Scenario(
                        f"rtd_anon_{strategy}@{b}",
                        f"**`retentiond run`** anonymize {strategy}/{strategy}, batch {b:,}",
                        SOURCE,
                        u,
                        self.retentiond("anonymize", strategy, b, False),
                        "anonymize",
                    )
                )
        p = "raw_part_delete"
        out.append(
            Scenario(p, "partitioned: raw `DELETE … WHERE created_at < cutoff`", PART_SOURCE, p, self.raw(RAW_DELETE))
        )
        for b in self.args.batch_sizes:
            out.append(
                Scenario(
                    f"rtd_part@{b}",
                    f"partitioned: **`retentiond run`** delete, batch {b:,}",
                    PART_SOURCE,
                    p,
                    self.retentiond("delete", "", b, True),
                    "delete",
                )
            )
        return [s for s in out if self.selected(s.name)]

    def selected(self, name: str) -> bool:
        """Return True when ``--only`` is not given or names ``name`` (with or without ``@batch``)."""
        only = self.args.only
        return not only or name in only or name.split("@")[0] in only

    # -- running ------------------------------------------------------------------------
    def seeded(self, source: str) -> State:
        """Return (cached) the state of ``source`` as seeded."""
        if source not in self.states:
            self.states[source] = state(source)
        return self.states[source]

    def expect(self, source: str) -> State:
        """Return (cached) the state a hold-aware purge of ``source`` must leave."""
        if source not in self.expected:
            self.expected[source] = expected_state(source, self.cutoff)
        return self.expected[source]

    def once(self, sc: Scenario, writer: bool = False) -> tuple[int, float, tuple[float, float, float, int] | None]:
        """Run ``sc`` on a fresh copy; check it; return (rows purged, seconds, writer figures)."""
        recreate(self.admin, RUN_DB, sc.source)
        w = Writer(RUN_DB, self.args.rows, self.insert_at) if writer else None
        if w:
            w.start()
            w.ready.wait(30)
            time.sleep(0.2)  # a few idle writes first: the writer is running when the scenario starts
        try:
            rows, seconds, rss = sc.run(RUN_DB)
        finally:
            if w:
                w.stop.set()
                w.join()
        if rss:
            sc.rss_kib = max(sc.rss_kib, rss)
        if sc.check:
            rows = self.verify(sc)
        return int(rows or 0), seconds, w.figures() if w else None

    def verify(self, sc: Scenario) -> int:
        """Compare the seeded rows left with the hold-aware expectation; return the rows purged.

        Raises:
            SystemExit: the run left other rows (or other rows untouched) than the raw hold-aware delete.
        """
        total, want, got = self.seeded(sc.source).left, self.expect(sc.source), state(RUN_DB)
        if sc.check == "delete":
            ok = (got.left, got.id_sum) == (want.left, want.id_sum)
            purged = total - got.left
        else:
            ok = got.left == total and got.untouched == want.left
            purged = total - got.untouched
        if not ok:
            raise SystemExit(
                f"{sc.name}: wrong rows left after the run: {got}, but the raw hold-aware delete leaves "
                f"{want} (rows left, sum of their ids; of {total:,} seeded rows)"
            )
        return purged


def repeated(bench: Bench, scenarios: list[Scenario], repeat: int) -> None:
    """Run every scenario once per repetition, the order rotated so that none always goes first."""
    step = max(1, len(scenarios) // repeat)
    for r in range(repeat):
        shift = (r * step) % len(scenarios)
        order = scenarios[shift:] + scenarios[:shift]
        print(f"repetition {r + 1}/{repeat}: {', '.join(s.name for s in order)}", flush=True)
        for sc in order:
            rows, seconds, _ = bench.once(sc)
            sc.samples.append((rows, seconds))
            print(f"  {sc.name}: {rows:,} rows in {seconds:.2f}s = {rows / seconds:,.0f} rows/s", flush=True)


def ratio_figures(sc: Scenario, ref: Scenario | None) -> tuple[str, str]:
    """Return the rows/s ratio to ``ref`` from the medians, and the range of per-repetition ratios."""
    if ref is None or not ref.samples:
        return "—", "—"

    def rate(samples: list[tuple[int, float]]) -> float:
        return statistics.median(r for r, _ in samples) / statistics.median(s for _, s in samples)

    pairs = [(r / s) / (rr / rs) for (r, s), (rr, rs) in zip(sc.samples, ref.samples, strict=False)]
    return ratio_text(rate(sc.samples) / rate(ref.samples)), f"{ratio_text(min(pairs))}–{ratio_text(max(pairs))}"


def ratio_text(ratio: float) -> str:
    """Return ``ratio`` with two significant digits below 0.1 (0.0031), two decimals otherwise."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def table(scenarios: list[Scenario]) -> str:
    """Return the markdown table of the repeated scenarios."""
    by_name = {s.name: s for s in scenarios}
    loops = [s for s in scenarios if s.base == "batched_loop" and s.samples]
    # The second reference: the fastest plain loop (median rows/s).
    loop = max(loops, key=lambda s: statistics.median(r / t for r, t in s.samples), default=None)
    lines = [
        "| scenario | rows | median s | range s | rows/s | × reference (median) | × range | × batched loop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sc in scenarios:
        if not sc.samples:
            continue
        rows = int(statistics.median(r for r, _ in sc.samples))
        secs = [s for _, s in sc.samples]
        med = statistics.median(secs)
        ratio, spread = ratio_figures(sc, by_name.get(sc.reference))
        vs_loop = ratio_figures(sc, loop)[0] if sc.source == SOURCE and sc.check == "delete" else "—"
        ref = "" if sc.reference == sc.name else f" (vs {sc.reference})"
        lines.append(
            f"| {sc.label} | {rows:,} | {med:.2f} | {min(secs):.2f}–{max(secs):.2f} | {rows / med:,.0f} "
            f"| {ratio}{ref} | {spread} | {vs_loop} |"
        )
    if loop:
        lines.append(f"\n× batched loop: the rows/s ratio to `{loop.name}`, the fastest plain loop.")
    return "\n".join(lines)


def latency(bench: Bench, scenarios: list[Scenario]) -> str:
    """Run the writer at idle and during one run of each latency scenario; return a markdown table."""
    lines = ["| concurrent writer during | p50 ms | p99 ms | max ms | writes |", "|---|---:|---:|---:|---:|"]
    by_base: dict[str, Scenario] = {}
    for sc in scenarios:
        by_base.setdefault(sc.base, sc)  # the first batch size
    for name in LATENCY:
        if name == "idle":
            if not bench.selected("idle"):
                continue
            recreate(bench.admin, RUN_DB, SOURCE)
            w = Writer(RUN_DB, bench.args.rows, bench.insert_at)
            w.start()
            w.ready.wait(30)
            time.sleep(3)
            w.stop.set()
            w.join()
            label, figures = "idle (3 s)", w.figures()
        elif name in by_base:
            sc = by_base[name]
            _, _, figures_or_none = bench.once(sc, writer=True)
            assert figures_or_none is not None
            label, figures = sc.label, figures_or_none
        else:
            continue
        p50, p99, worst, n = figures
        print(f"  writer during {name}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms ({n} writes)")
        lines.append(f"| {label} | {p50:.1f} | {p99:.1f} | {worst:.1f} | {n:,} |")
    return "\n".join(lines)


def find_bench(bench: Bench, refs: int, per_batch: int = 5000) -> str:
    """Build a PostgreSQL ledger of ``refs`` refs with ``Ledger.append``; time ``audit find``'s lookups.

    Returns a markdown table.

    Raises:
        SystemExit: a lookup found the wrong number of entries.
    """
    recreate(bench.admin, FIND_DB)
    maker = RefMaker(b"b" * 32)
    batches = max(1, -(-refs // per_batch))
    started = time.perf_counter()
    with Ledger.open(db_url(FIND_DB)) as ledger:
        for i in range(batches):
            n = min(per_batch, refs - i * per_batch)
            keyed = tuple(maker.sql_many("app", "events", [(i * per_batch + j,) for j in range(n)]))
            event = Batch(
                batch_id=BatchId.new(),
                category="events",
                store="app",
                target="events",
                action=Action.DELETE,
                outcome=Outcome.DELETED,
                count=n,
                refs=keyed,
            )
            ledger.append(event, run_id="bench-find")
            if (i + 1) % max(1, batches // 10) == 0:
                print(f"  ledger: {i + 1:,}/{batches:,} batches, {time.perf_counter() - started:.0f}s", flush=True)
    build = time.perf_counter() - started
    with bench.admin.connect() as conn:
        size = conn.execute(sa.text("SELECT pg_database_size(:d)"), {"d": FIND_DB}).scalar_one()
    lines = [
        f"Ledger of {refs:,} refs in {batches:,} batch entries: built in {build:.1f}s "
        f"({refs / build:,.0f} refs/s), {size / 2**20:,.0f} MiB.",
        "",
        "| `audit find` lookup | first s | median of 5 s | entries found |",
        "|---|---:|---:|---:|",
    ]
    probes = {
        "a ref in the first batch": (17, 1),
        "a ref in the middle batch": ((batches // 2) * per_batch + 17, 1),
        "a ref in the last batch": (refs - 1, 1),
        "an absent ref": (refs + 12_345, 0),
    }
    with Ledger.open(db_url(FIND_DB), create=False) as ledger:
        for label, (key, want) in probes.items():
            ref = maker.sql("app", "events", (key,))
            times, hits = [], []
            for _ in range(6):
                t = time.perf_counter()
                hits = find_record(ledger, ref)
                times.append(time.perf_counter() - t)
            if len(hits) != want:
                raise SystemExit(f"audit find of {label}: {len(hits)} entries, expected {want}")
            print(f"  find {label}: first {times[0]:.4f}s, median {statistics.median(times[1:]):.4f}s")
            lines.append(f"| {label} | {times[0]:.4f} | {statistics.median(times[1:]):.4f} | {len(hits)} |")
    drop(bench.admin, FIND_DB)
    return "\n".join(lines)


def rss_bench(bench: Bench) -> str:
    """Return lines of retentiond's peak RSS deleting at each of ``--rss-rows``."""
    lines = []
    for rows in bench.args.rss_rows:
        source = SOURCE if rows == bench.args.rows else RSS_SOURCE
        if source == RSS_SOURCE:
            seed(bench.admin, RSS_SOURCE, rows, bench.now, bench.cutoff, partitioned=False)
        recreate(bench.admin, RUN_DB, source)
        _, seconds, rss = bench.retentiond("delete", "", bench.args.batch_sizes[0], False)(RUN_DB)
        lines.append(f"- peak RSS of `retentiond run` (delete) at {rows:,} rows: {(rss or 0) / 1024:.0f} MB")
        print(lines[-1] + f" ({seconds:.1f}s)", flush=True)
    drop(bench.admin, RSS_SOURCE)
    return "\n".join(lines)


def integers(text: str) -> list[int]:
    """Return the comma-separated integers of ``text``."""
    return [int(x.replace("_", "")) for x in text.split(",") if x.strip()]


def main() -> None:
    """Parse the options, run the selected parts, print the markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-sizes", type=integers, default=[5000], help="retentiond batch sizes, e.g. 5000,10000")
    parser.add_argument("--loop-batches", type=integers, default=[5000, 10000], help="plain batched loop sizes")
    parser.add_argument("--only", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], default=[])
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rss-rows", type=integers, default=[1_000_000, 5_000_000])
    parser.add_argument("--skip-find", action="store_true")
    parser.add_argument("--find-refs", type=int, default=10_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        bench = Bench(args, Path(tmpdir))
        try:
            run_all(bench)
        finally:
            drop(bench.admin, RUN_DB, LEDGER_DB, FIND_DB, RSS_SOURCE, SOURCE, PART_SOURCE)
            bench.admin.dispose()


def run_all(bench: Bench) -> None:
    """Seed, run the repetitions, the writer, find and RSS parts; print the markdown at the end."""
    args = bench.args
    scenarios = bench.scenarios()
    start, end = span(bench.now)
    print(
        f"seeding {args.rows:,} rows ({start:%Y-%m-%d} to {end:%Y-%m-%d}, cutoff {bench.cutoff:%Y-%m-%d}), "
        "plain and partitioned ...",
        flush=True,
    )
    t = time.perf_counter()
    seed(bench.admin, SOURCE, args.rows, bench.now, bench.cutoff, partitioned=False)
    if any(s.source == PART_SOURCE for s in scenarios):
        seed(bench.admin, PART_SOURCE, args.rows, bench.now, bench.cutoff, partitioned=True)
    print(f"  seeded in {time.perf_counter() - t:.1f}s", flush=True)
    out = []
    if scenarios:
        repeated(bench, scenarios, args.repeat)
        out.append(
            f"{args.rows:,} rows, {args.repeat} interleaved repetitions (medians; ratios of rows/s; "
            "the reference is the raw DELETE, the raw UPDATE for anonymize, the raw partitioned DELETE "
            "for the partitioned case):\n\n" + table(scenarios)
        )
        rss = [f"{s.name} {s.rss_kib / 1024:.0f} MB" for s in scenarios if s.rss_kib]
        if rss:
            out.append("Peak RSS of the retentiond runs: " + ", ".join(rss) + ".")
    if not args.skip_latency:
        print("concurrent writer ...", flush=True)
        out.append(latency(bench, scenarios))
    if not args.skip_find and bench.selected("find"):
        print(f"audit find on a ledger of {args.find_refs:,} refs ...", flush=True)
        out.append(find_bench(bench, args.find_refs))
    if not args.skip_rss and bench.selected("rss"):
        print("peak RSS ...", flush=True)
        out.append(rss_bench(bench))
    print("\n" + "\n\n".join(out))


if __name__ == "__main__":
    main()
