"""The shipped policy (config/retention.toml, config/holds.toml) against the notice and the demo.

These tests read the TOML files with ``tomllib`` directly, so they hold whatever state the
configuration models are in; model validation of the shipped files is tested with the models.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import tomllib
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from dateutil.relativedelta import relativedelta

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # demo/ is not part of the installed package: import it from the checkout
    sys.path.insert(0, str(REPO))

from demo import schema  # noqa: E402
from demo.seed import HELD_ACCOUNTS, seed  # noqa: E402
from demo.seed import main as seed_main  # noqa: E402

POLICY_FILE = REPO / "config" / "retention.toml"
HOLDS_FILE = REPO / "config" / "holds.toml"
NOTICE_COPY = REPO / "docs" / "privacy-notice.txt"
# Where the reference notice lives outside the repository (CI copies shared/ beside the repo).
SHARED_NOTICE_SHA256 = "154102e584967edc1f5344b50faa1d7c2b904177f270fbef2bb1d2ff96e326c0"
SHARED_NOTICE = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_bdc48979f53ba687.txt"

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
STRATEGIES = {"null", "redact", "hmac", "truncate_ip", "year", "month"}
REQUIRED_CATEGORIES = {
    "account_contact",
    "payment_information",
    "billing_records",
    "tax_identifiers",
    "support_communications",
    "event_media",
    "clickstream",
    "network_connection",
    "device_information",
    "cookie_identifiers",
    "cloud_telemetry",
    "marketing_leads",
    "auth_credential_logs",
}
HOLD_KEYS = {
    "id",
    "kind",
    "reason",
    "reference",
    "placed_by",
    "placed_at",
    "expires_at",
    "categories",
    "subjects",
    "keep_younger_than",
}


def _policy() -> dict:
    return tomllib.loads(POLICY_FILE.read_text(encoding="utf-8"))


def _holds() -> dict:
    return tomllib.loads(HOLDS_FILE.read_text(encoding="utf-8"))


def _notice() -> str:
    """The notice text: the repository copy without its provenance header."""
    text = NOTICE_COPY.read_text(encoding="utf-8")
    header, sep, body = text.partition("-" * 70 + "\n")
    assert sep, "docs/privacy-notice.txt lost its provenance header"
    return body


def _sql_targets() -> list[tuple[str, dict]]:
    return [(name, t) for name, c in _policy()["categories"].items() for t in c.get("sql", [])]


def _cutoff(now: datetime, period: str) -> datetime:
    """``now - period`` with calendar months and years, as SPEC §3 defines retention periods."""
    amount, unit = re.fullmatch(r"([0-9]+)(d|w|mo|y)", period).groups()
    key = {"d": "days", "w": "weeks", "mo": "months", "y": "years"}[unit]
    return now - relativedelta(**{key: int(amount)})


def _quotes_by_category() -> dict[str, list[str]]:
    """The ``# "..."`` comment lines of each ``[categories.X]`` block, keyed by X."""
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in POLICY_FILE.read_text(encoding="utf-8").splitlines():
        header = re.match(r"\s*\[\[?categories\.([A-Za-z0-9_]+)", line)
        if header:
            current = header.group(1)
            found.setdefault(current, [])
            continue
        quote = re.fullmatch(r'\s*# "(.+)"\s*', line)
        if quote and current is not None:
            found[current].append(quote.group(1))
    return found


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[sa.Engine, dict[str, int]]:
    path = tmp_path_factory.mktemp("seed") / "demo.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    counts = seed(engine, now=NOW)
    yield engine, counts
    engine.dispose()


class TestNoticeQuotes:
    """Every category quotes, word for word, the privacy notice sentence it implements."""

    def test_every_category_has_a_verbatim_quote(self) -> None:
        """Each category block has at least one `# "..."` line found verbatim in the notice."""
        notice = _notice()
        quotes = _quotes_by_category()
        without = sorted(c for c in _policy()["categories"] if not any(q in notice for q in quotes.get(c, [])))
        assert [] == without

    def test_every_quote_line_is_verbatim(self) -> None:
        """No `# "..."` line paraphrases: each one occurs in the notice exactly as written."""
        notice = _notice()
        wrong = [(c, q) for c, qs in _quotes_by_category().items() for q in qs if q not in notice]
        assert [] == wrong

    def test_repository_copy_matches_shared_notice(self) -> None:
        """docs/privacy-notice.txt is the shared reference notice, unchanged.

        Compared with the shared file when it lies beside the checkout, and always with the
        SHA-256 of that file as it was when the policy was written.
        """
        expected = SHARED_NOTICE_SHA256
        if SHARED_NOTICE.is_file():
            expected = hashlib.sha256(SHARED_NOTICE.read_bytes()).hexdigest()
        assert expected == hashlib.sha256(_notice().encode("utf-8")).hexdigest()


class TestPolicyShape:
    """The shipped policy has the categories, targets and settings the product promises."""

    def test_categories(self) -> None:
        """All categories drawn from the notice are present (at least 12)."""
        names = set(_policy()["categories"])
        assert set() == REQUIRED_CATEGORIES - names
        assert len(names) >= 12

    def test_category_basics(self) -> None:
        """Each category has a description, a calendar retention period and a known action."""
        bad = [
            name
            for name, c in _policy()["categories"].items()
            if not c.get("description")
            or not re.fullmatch(r"[1-9][0-9]*(d|w|mo|y)", c.get("retain", ""))
            or c.get("action") not in ("delete", "anonymize")
        ]
        assert [] == bad

    def test_prior_versions(self) -> None:
        """At least two categories keep prior versions; account_contact has a history table."""
        cats = _policy()["categories"]
        with_versions = {n for n, c in cats.items() if "prior_versions" in c}
        assert len(with_versions) >= 2
        assert {"account_contact"} <= with_versions
        assert "account_contact_versions" == cats["account_contact"]["sql"][0]["history"]["table"]
        for name in with_versions:
            assert any("history" in t for t in cats[name].get("sql", [])), name

    def test_s3_buckets(self) -> None:
        """Support attachments, event media and cloud telemetry have S3 targets, delete only."""
        cats = _policy()["categories"]
        buckets = {(n, t["bucket"]) for n, c in cats.items() for t in c.get("s3", [])}
        assert {
            ("support_communications", "support-attachments"),
            ("event_media", "event-media"),
            ("cloud_telemetry", "cloud-telemetry"),
        } <= buckets
        for name, c in cats.items():
            for t in c.get("s3", []):
                assert "delete" == c["action"], name
                assert t["prefix"], name
                assert "anonymize" not in t, name
                assert "subject" in re.compile(t["subject_pattern"]).groupindex, name

    def test_sections(self) -> None:
        """Daemon, audit and stores use the agreed names; no secret is inline."""
        cfg = _policy()
        assert "/var/lib/retentiond" == cfg["daemon"]["state_dir"]
        assert "holds.toml" == cfg["daemon"]["holds_file"]
        assert ("audit-hmac", "audit-signing") == (
            cfg["audit"]["hmac_key_credential"],
            cfg["audit"]["signing_key_credential"],
        )
        assert {"kind": "sql", "url_env": "RETENTIOND_APP_DB_URL"} == cfg["stores"]["app"]
        assert {"kind": "s3", "region": "us-east-1", "endpoint_url_env": "RETENTIOND_S3_ENDPOINT"} == cfg["stores"][
            "files"
        ]
        assert "@" not in cfg["audit"].get("url", "")

    def test_anonymize_strategies_known(self) -> None:
        """Anonymize maps use only the documented strategies, on anonymize categories only."""
        cats = _policy()["categories"]
        for name, t in _sql_targets():
            amap = t.get("anonymize", {})
            assert ("anonymize" == cats[name]["action"]) == bool(amap), (name, t["table"])
            unknown = [s for s in amap.values() if s not in STRATEGIES and not s.startswith("fixed:")]
            assert [] == unknown

    def test_single_intended_overlap(self) -> None:
        """Only page_events is covered by two categories (clickstream deletes, network anonymizes)."""
        covering: dict[str, set[str]] = {}
        for name, t in _sql_targets():
            covering.setdefault(t["table"], set()).add(name)
        overlaps = {table: cats for table, cats in covering.items() if len(cats) > 1}
        assert {"page_events": {"clickstream", "network_connection"}} == overlaps

    def test_subject_column_everywhere(self) -> None:
        """Every SQL target names account_id as its subject, so holds by subject work."""
        assert [] == [(n, t["table"]) for n, t in _sql_targets() if t.get("subject_column") != "account_id"]


class TestSchemaCoversPolicy:
    """demo/schema.py has every table and column the shipped policy names, with fitting types."""

    def test_tables_and_columns_exist(self) -> None:
        """Every table, key, age, subject, match, anonymize and history column is in the schema."""
        missing = []
        for name, t in _sql_targets():
            table = schema.metadata.tables.get(t["table"])
            if table is None:
                missing.append((name, t["table"], None))
                continue
            columns = [*t["key"], t["age_column"], t["subject_column"], *t.get("match", {}), *t.get("anonymize", {})]
            missing += [(name, t["table"], c) for c in columns if c not in table.c]
            if "history" in t:
                h = t["history"]
                hist = schema.metadata.tables.get(h["table"])
                if hist is None:
                    missing.append((name, h["table"], None))
                    continue
                hcols = [*h["key"], *h["parent"], h["superseded_column"]]
                missing += [(name, h["table"], c) for c in hcols if c not in hist.c]
        assert [] == missing

    def test_keys_are_primary_keys(self) -> None:
        """Each target's `key` is its table's primary key (and the history table's)."""
        for _, t in _sql_targets():
            assert t["key"] == [c.name for c in schema.metadata.tables[t["table"]].primary_key]
            if "history" in t:
                h = t["history"]
                assert h["key"] == [c.name for c in schema.metadata.tables[h["table"]].primary_key]

    def test_age_columns_are_timestamptz(self) -> None:
        """Age and superseded columns are DateTime(timezone=True) (timestamptz in PostgreSQL)."""
        wrong = []
        for _, t in _sql_targets():
            pairs = [(t["table"], t["age_column"])]
            if "history" in t:
                pairs.append((t["history"]["table"], t["history"]["superseded_column"]))
            for table, column in pairs:
                ctype = schema.metadata.tables[table].c[column].type
                if not (isinstance(ctype, sa.DateTime) and ctype.timezone):
                    wrong.append((table, column))
        assert [] == wrong

    def test_strategies_fit_column_types(self) -> None:
        """null needs a nullable column, year/month a Date, text strategies a Text column."""
        misfits = []
        for _, t in _sql_targets():
            table = schema.metadata.tables[t["table"]]
            for column, strategy in t.get("anonymize", {}).items():
                col = table.c[column]
                if strategy == "null":
                    ok = col.nullable
                elif strategy in ("year", "month"):
                    ok = isinstance(col.type, sa.Date)
                else:  # redact, hmac, truncate_ip, fixed:<value>
                    ok = isinstance(col.type, sa.Text)
                if not ok:
                    misfits.append((t["table"], column, strategy))
        assert [] == misfits

    def test_history_foreign_keys_do_not_cascade(self) -> None:
        """History tables reference their parent without ON DELETE CASCADE."""
        for _, t in _sql_targets():
            if "history" not in t:
                continue
            h = t["history"]
            fks = [fk for fk in schema.metadata.tables[h["table"]].foreign_keys if fk.column.table.name == t["table"]]
            assert h["parent"] == [fk.parent.name for fk in fks]
            assert [None] == list({fk.ondelete for fk in fks})
        cascades = [
            (table.name, fk.parent.name)
            for table in schema.TABLES
            for fk in table.foreign_keys
            if (fk.ondelete or "").upper() == "CASCADE"
        ]
        assert [] == cascades

    def test_indexes_on_age_and_subject_columns(self) -> None:
        """Every age, subject, history parent and superseded column leads an index."""

        def indexed(table_name: str) -> set[str]:
            table = schema.metadata.tables[table_name]
            return {next(iter(ix.columns)).name for ix in table.indexes}

        unindexed = []
        for _, t in _sql_targets():
            have = indexed(t["table"])
            unindexed += [(t["table"], c) for c in (t["age_column"], t["subject_column"]) if c not in have]
            if "history" in t:
                h = t["history"]
                have = indexed(h["table"])
                unindexed += [(h["table"], c) for c in (*h["parent"], h["superseded_column"]) if c not in have]
        assert [] == unindexed

    def test_seeded_database_has_policy_columns(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Reflecting the seeded SQLite database finds every table and column the policy names."""
        engine, _ = seeded
        inspector = sa.inspect(engine)
        missing = []
        for _, t in _sql_targets():
            wanted = {
                t["table"]: [
                    *t["key"],
                    t["age_column"],
                    t["subject_column"],
                    *t.get("match", {}),
                    *t.get("anonymize", {}),
                ]
            }
            if "history" in t:
                h = t["history"]
                wanted[h["table"]] = [*h["key"], *h["parent"], h["superseded_column"]]
            for table, cols in wanted.items():
                present = {c["name"] for c in inspector.get_columns(table)} if inspector.has_table(table) else set()
                missing += [(table, c) for c in cols if c not in present]
        assert [] == missing


class TestSeed:
    """demo.seed fills every table with a realistic, deterministic mix of expired and live rows."""

    def test_volume(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """A few thousand rows, every table filled, counts match the database."""
        engine, counts = seeded
        assert set(counts) == set(schema.metadata.tables)
        assert 2000 <= sum(counts.values()) <= 10000
        with engine.connect() as conn:
            actual = {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in schema.TABLES
            }
        assert counts == actual
        assert [] == [name for name, n in counts.items() if n == 0]

    def test_expired_and_live_rows_in_every_target(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Each SQL target has rows past its category's cutoff and rows within it."""
        engine, _ = seeded
        cats = _policy()["categories"]
        one_sided = []
        with engine.connect() as conn:
            for name, t in _sql_targets():
                table = schema.metadata.tables[t["table"]]
                age = table.c[t["age_column"]]
                cutoff = _cutoff(NOW, cats[name]["retain"])
                old = conn.execute(sa.select(sa.func.count()).where(age < cutoff)).scalar_one()
                young = conn.execute(sa.select(sa.func.count()).where(age >= cutoff)).scalar_one()
                if not (old and young):
                    one_sided.append((name, t["table"], old, young))
        assert [] == one_sided

    def test_timestamps_span_three_years(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Clickstream timestamps spread over the last three years and never lie in the future."""
        engine, _ = seeded
        t = schema.page_events
        with engine.connect() as conn:
            oldest, newest = conn.execute(sa.select(sa.func.min(t.c.occurred_at), sa.func.max(t.c.occurred_at))).one()
        assert oldest < (NOW - timedelta(days=1000)).replace(tzinfo=None)
        assert newest <= NOW.replace(tzinfo=None)

    def test_clock_not_started(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Open accounts, open tickets, instruments and tax ids in use have a NULL age."""
        engine, _ = seeded
        pairs = [
            (schema.account_contacts, "closed_at"),
            (schema.support_tickets, "closed_at"),
            (schema.payment_instruments, "removed_at"),
            (schema.tax_identifiers, "replaced_at"),
        ]
        with engine.connect() as conn:
            nulls = {
                t.name: conn.execute(sa.select(sa.func.count()).where(t.c[c].is_(None))).scalar_one() for t, c in pairs
            }
        assert [] == [name for name, n in nulls.items() if n == 0]

    def test_reopened_tickets(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Some tickets were closed and reopened: the policy's match filter must keep them."""
        engine, _ = seeded
        t = schema.support_tickets
        with engine.connect() as conn:
            reopened = conn.execute(
                sa.select(sa.func.count()).where(t.c.status == "open", t.c.closed_at.is_not(None))
            ).scalar_one()
        assert reopened > 0

    def test_legal_hold_accounts_have_expired_rows(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """acct_1042 and acct_2210 have contacts and tickets past 2 years, so the hold matters."""
        engine, _ = seeded
        cutoff = _cutoff(NOW, "2y")
        with engine.connect() as conn:
            for table in (schema.account_contacts, schema.support_tickets):
                for acct in HELD_ACCOUNTS:
                    n = conn.execute(
                        sa.select(sa.func.count()).where(table.c.account_id == acct, table.c.closed_at < cutoff)
                    ).scalar_one()
                    assert n > 0, (table.name, acct)

    def test_tax_hold_leaves_some_invoices_eligible(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """A few invoices and tax ids are older than 7 years; most are younger (held)."""
        engine, _ = seeded
        cutoff = _cutoff(NOW, "7y")
        with engine.connect() as conn:
            for table, age in ((schema.invoices, "issued_at"), (schema.tax_identifiers, "replaced_at")):
                old = conn.execute(sa.select(sa.func.count()).where(table.c[age] < cutoff)).scalar_one()
                young = conn.execute(sa.select(sa.func.count()).where(table.c[age] >= cutoff)).scalar_one()
                assert 0 < old < young, table.name

    def test_prior_versions_on_both_sides_of_their_period(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """History rows exist older and younger than each category's prior_versions period."""
        engine, _ = seeded
        cats = _policy()["categories"]
        with engine.connect() as conn:
            for name, t in _sql_targets():
                if "history" not in t:
                    continue
                hist = schema.metadata.tables[t["history"]["table"]]
                col = hist.c[t["history"]["superseded_column"]]
                cutoff = _cutoff(NOW, cats[name]["prior_versions"])
                old = conn.execute(sa.select(sa.func.count()).where(col < cutoff)).scalar_one()
                young = conn.execute(sa.select(sa.func.count()).where(col >= cutoff)).scalar_one()
                assert old > 0 and young > 0, hist.name

    def test_history_rows_reference_existing_parents(self, seeded: tuple[sa.Engine, dict[str, int]]) -> None:
        """Every prior version points at an existing current record of the same account."""
        engine, _ = seeded
        pairs = [
            (schema.account_contact_versions, "contact_id", schema.account_contacts),
            (schema.support_ticket_versions, "ticket_id", schema.support_tickets),
        ]
        with engine.connect() as conn:
            for hist, parent_col, parent in pairs:
                orphans = conn.execute(
                    sa.select(sa.func.count())
                    .select_from(hist.outerjoin(parent, hist.c[parent_col] == parent.c.id))
                    .where(sa.or_(parent.c.id.is_(None), parent.c.account_id != hist.c.account_id))
                ).scalar_one()
                assert 0 == orphans, hist.name

    def test_deterministic(self, tmp_path: Path) -> None:
        """The same now and rng seed give identical databases; another seed gives other data."""

        def digest(name: str, rng_seed: int) -> str:
            engine = sa.create_engine(f"sqlite:///{tmp_path / name}")
            seed(engine, now=NOW, rows_per_table=40, rng_seed=rng_seed)
            h = hashlib.sha256()
            with engine.connect() as conn:
                for table in schema.TABLES:
                    for row in conn.execute(sa.select(table).order_by(*table.primary_key.columns)):
                        h.update(repr(tuple(row)).encode())
            engine.dispose()
            return h.hexdigest()

        assert digest("a.db", 7) == digest("b.db", 7)
        assert digest("c.db", 7) != digest("d.db", 8)

    def test_refuses_naive_now_and_non_empty_database(self, tmp_path: Path) -> None:
        """A naive `now` is refused; a second seed needs reset=True."""
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
        with pytest.raises(ValueError, match="timezone-aware"):
            seed(engine, now=NOW.replace(tzinfo=None))
        seed(engine, now=NOW, rows_per_table=10)
        with pytest.raises(ValueError, match="already holds rows"):
            seed(engine, now=NOW, rows_per_table=10)
        counts = seed(engine, now=NOW, rows_per_table=10, reset=True)
        with engine.connect() as conn:
            assert (
                counts["invoices"] == conn.execute(sa.select(sa.func.count()).select_from(schema.invoices)).scalar_one()
            )
        engine.dispose()

    def test_command_line(self, tmp_path: Path) -> None:
        """`python -m demo.seed --url ... --now ...` prints one summary line and exits 0."""
        out = io.StringIO()
        with redirect_stdout(out):
            rc = seed_main(
                ["--url", f"sqlite:///{tmp_path / 'cli.db'}", "--now", "2026-11-29T12:00:00Z", "--rows", "20"]
            )
        assert 0 == rc
        lines = out.getvalue().splitlines()
        assert 1 == len(lines)
        assert lines[0].startswith("seeded ") and "2026-11-29T12:00:00+00:00" in lines[0]


class TestHoldsFile:
    """Legal's shipped holds file: the tax hold, an example legal hold, and a full template."""

    def test_tax_hold(self) -> None:
        """TAX-US-7Y holds billing records and tax identifiers younger than 7 years."""
        hold = {h["id"]: h for h in _holds()["hold"]}["TAX-US-7Y"]
        assert ("tax", "7y") == (hold["kind"], hold["keep_younger_than"])
        assert {"billing_records", "tax_identifiers"} <= set(hold["categories"])
        assert hold["reason"] and hold["placed_by"] and hold["placed_at"] and hold["reference"]

    def test_legal_hold(self) -> None:
        """LIT-2026-014 covers two subjects' support and contact data until 2027-12-31."""
        hold = {h["id"]: h for h in _holds()["hold"]}["LIT-2026-014"]
        assert "legal" == hold["kind"]
        assert {"support_communications", "account_contact"} == set(hold["categories"])
        assert set(HELD_ACCOUNTS) == set(hold["subjects"])
        assert "2027-12-31" == hold["expires_at"].isoformat()
        assert hold["placed_at"] <= NOW.date() < hold["expires_at"]

    def test_holds_name_known_categories(self) -> None:
        """Every category a hold names exists in the shipped policy (or is "*")."""
        known = set(_policy()["categories"]) | {"*"}
        assert [] == [(h["id"], c) for h in _holds()["hold"] for c in h["categories"] if c not in known]

    def test_hold_keys(self) -> None:
        """Holds use only the documented keys, with unique ids."""
        holds = _holds()["hold"]
        assert [] == [(h["id"], k) for h in holds for k in h if k not in HOLD_KEYS]
        assert len(holds) == len({h["id"] for h in holds})

    def test_commented_template_shows_every_key(self) -> None:
        """The commented example block for Legal sets every hold key, and parses once uncommented."""
        text = HOLDS_FILE.read_text(encoding="utf-8")
        template = text[text.index("# [[hold]]") :]
        uncommented = "\n".join(
            line[2:] for line in template.splitlines() if line.startswith("# ") and not line.startswith("# #")
        )
        parsed = tomllib.loads(uncommented)["hold"][0]
        assert HOLD_KEYS == set(parsed)
        assert set(parsed["categories"]) <= set(_policy()["categories"])
