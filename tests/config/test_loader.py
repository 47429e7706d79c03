"""Loading and cross-checking retention.toml and the holds files (SPEC §3)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from retentiond.cli.render import toml_like
from retentiond.config.durations import RetentionPeriod
from retentiond.config.loader import load_config, load_holds
from retentiond.config.locate import find_line, line_index
from retentiond.config.models import S3Store, SqlStore
from retentiond.errors import ConfigError, ConfigIssue

UTC = UTC

FULL = """\
[daemon]
timezone = "Europe/Berlin"
schedule = "15 3 * * *"
batch_size = 1000
pause_between_batches = "2s"
max_fraction_per_run = 0.5
min_retention = "7d"
hold_release_grace = "14d"
holds_file = "legal/holds.toml"
state_dir = "state"
metrics_listen = ""

[audit]
url_env = "AUDIT_DB_URL"
hmac_key_file = "keys/hmac.key"
signing_key_credential = "audit-signing"
checkpoint_interval = "30m"

[audit.anchor]
store = "files"
bucket = "audit-anchors"
retain_days = 365

[stores.app]
kind = "sql"
url = "postgresql+psycopg://app@db.internal/app"
lock_timeout = "5s"

[stores.files]
kind = "s3"
region = "eu-central-1"
endpoint_url_env = "S3_ENDPOINT"

[categories.support_communications]
description = "Support tickets"
retain = "2y"
action = "delete"
schedule = "0 4 * * 0"
prior_versions = "90d"

  [[categories.support_communications.sql]]
  store = "app"
  table = "app.support_tickets"
  key = ["id"]
  age_column = "closed_at"
  subject_column = "account_id"
  match = { status = "closed", archived = false, priority = 3 }
  history = { table = "support_ticket_versions", key = ["version_id"], parent = ["ticket_id"], superseded_column = "superseded_at" }

  [[categories.support_communications.s3]]
  store = "files"
  bucket = "support-attachments"
  prefix = "tickets/"
  age = "tag:closed-at"
  subject_pattern = '^tickets/(?P<subject>[^/]+)/'

[categories.billing_contact]
retain = "13mo"
action = "anonymize"

  [[categories.billing_contact.sql]]
  store = "app"
  table = "invoices"
  key = ["id"]
  age_column = "issued_at"
  age_timezone = "UTC"
  anonymize = { billing_email = "null", billing_name = "redact", client_ip = "truncate_ip", customer_ref = "hmac", born = "year", note = "fixed:n/a" }

[categories.media]
retain = "1y"
action = "delete"

  [[categories.media.s3]]
  store = "files"
  bucket = "event-media"
  whole_bucket = true
"""  # noqa: E501 - a TOML inline table is one line, however long

SMALL = """\
[stores.app]
kind = "sql"
url_env = "APP_DB_URL"

[categories.support]
retain = "2y"
action = "delete"

  [[categories.support.sql]]
  store = "app"
  table = "tickets"
  key = ["id"]
  age_column = "closed_at"

[categories.billing]
retain = "7y"
action = "delete"

  [[categories.billing.sql]]
  store = "app"
  table = "invoices"
  key = ["id"]
  age_column = "issued_at"
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def issues_of(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.issues


def by_path(issues: list[ConfigIssue]) -> dict[str, ConfigIssue]:
    return {i.path: i for i in issues}


def hold_block(**over: str | None) -> str:
    fields: dict[str, str | None] = {
        "id": '"LIT-1"',
        "kind": '"legal"',
        "reason": '"Preservation notice"',
        "placed_by": '"j.doe@legal"',
        "placed_at": "2026-01-01",
        "categories": '["support"]',
    }
    fields.update(over)
    return "[[hold]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None) + "\n"


def holds_issues(path: Path) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load_holds(path, ["support", "billing"])
    return caught.value.issues


class TestValidConfig:
    """A config using every section loads with the values written and the documented defaults."""

    def test_values(self, tmp_path: Path) -> None:
        """Every written value arrives typed: periods, spans, stores by kind, targets, inline tables."""
        loaded = load_config(write(tmp_path / "retention.toml", FULL))
        s = loaded.settings
        support = s.categories["support_communications"]
        actual = (
            s.daemon.timezone,
            s.daemon.batch_size,
            s.daemon.pause_between_batches,
            s.daemon.min_retention,
            s.daemon.hold_release_grace,
            s.audit.checkpoint_interval,
            s.audit.anchor.retain_days if s.audit.anchor else None,
            type(s.stores["app"]),
            type(s.stores["files"]),
            support.retain,
            support.prior_versions,
            support.sql[0].table,
            support.sql[0].match,
            support.sql[0].history.parent if support.sql[0].history else None,
            support.s3[0].age,
            s.categories["billing_contact"].retain,
            s.categories["media"].s3[0].whole_bucket,
        )
        expected = (
            "Europe/Berlin",
            1000,
            timedelta(seconds=2),
            RetentionPeriod(7, "d"),
            RetentionPeriod(14, "d"),
            timedelta(minutes=30),
            365,
            SqlStore,
            S3Store,
            RetentionPeriod(2, "y"),
            RetentionPeriod(90, "d"),
            "app.support_tickets",
            {"status": "closed", "archived": False, "priority": 3},
            ["ticket_id"],
            "tag:closed-at",
            RetentionPeriod(13, "mo"),
            True,
        )
        assert expected == actual

    def test_paths_resolve_against_the_file(self, tmp_path: Path) -> None:
        """holds_file and state_dir are relative to the config file's folder."""
        loaded = load_config(write(tmp_path / "etc" / "retention.toml", FULL))
        assert (tmp_path / "etc" / "legal" / "holds.toml", tmp_path / "etc" / "state") == (
            loaded.holds_path,
            loaded.state_dir,
        )

    def test_defaults(self, tmp_path: Path) -> None:
        """Unset keys take the defaults of SPEC §3."""
        d = load_config(write(tmp_path / "retention.toml", SMALL)).settings.daemon
        actual = (
            d.timezone,
            d.schedule,
            d.batch_size,
            d.max_fraction_per_run,
            d.min_retention,
            d.hold_release_grace,
            d.holds_file,
        )
        assert (
            "UTC",
            "15 3 * * *",
            5000,
            0.25,
            RetentionPeriod(1, "d"),
            RetentionPeriod(7, "d"),
            "holds.toml",
        ) == actual

    def test_round_trip(self, tmp_path: Path) -> None:
        """The effective config (as `config show` prints it) loads again to the same settings."""
        first = load_config(write(tmp_path / "a" / "retention.toml", FULL))
        dumped = toml_like(first.settings.model_dump(mode="json"))
        second = load_config(write(tmp_path / "b" / "retention.toml", dumped))
        assert first.settings == second.settings

    def test_sha256_is_of_the_bytes(self, tmp_path: Path) -> None:
        """The reported hash is the SHA-256 of the file as written."""
        import hashlib

        path = write(tmp_path / "retention.toml", SMALL)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == load_config(path).sha256


class TestErrors:
    """Every error of a file is reported together, with its dotted path, line and a hint."""

    MANY = """\
    [daemon]
    batchsize = 10
    schedule = "15 3 * *"

    [audit]
    url = "postgresql://audit:secret@db/audit"

    [stores.app]
    kind = "sql"
    url_env = "APP_DB_URL"

    [categories.support]
    retain = "6m"
    action = "delete"

      [[categories.support.sql]]
      store = "app"
      table = "users; DROP TABLE x"
      key = ["id"]
      age_column = "closed_at"

    [categories.media]
    retain = "1y"
    action = "anonymize"

      [[categories.media.s3]]
      store = "app"
      bucket = "event-media"
    """

    def test_all_errors_together(self, tmp_path: Path) -> None:
        """A file with many independent mistakes yields one issue for each, in line order."""
        issues = issues_of(write(tmp_path / "retention.toml", self.MANY))
        expected = {
            "daemon.batchsize": 2,
            "daemon.schedule": 3,
            "audit.url": 6,
            "categories.support.retain": 13,
            "categories.support.sql[0].table": 18,
            "categories.media.s3[0]": 26,
            "categories.media.s3[0].store": 27,
            "categories.media.s3[0].prefix": 26,
        }
        assert expected == {i.path: i.line for i in issues}
        assert sorted(i.line or 0 for i in issues) == [i.line for i in issues]

    def test_issue_renders_file_line_path(self, tmp_path: Path) -> None:
        """An issue renders as file:line: path: message."""
        path = write(tmp_path / "retention.toml", self.MANY)
        issue = by_path(issues_of(path))["daemon.batchsize"]
        assert f"{path}:2: daemon.batchsize: unknown key; did you mean 'batch_size'?" == issue.render()

    @pytest.mark.parametrize(
        ("snippet", "path", "hint"),
        [
            ("[daemon]\nbatchsize = 1\n", "daemon.batchsize", "did you mean 'batch_size'?"),
            ('[audit]\nhmac_key_env_ = "K"\n', "audit.hmac_key_env_", "did you mean 'hmac_key_env'?"),
            ('[categoris.x]\nretain = "1y"\n', "categoris", "did you mean 'categories'?"),
            ('[stores.s3x]\nkind = "s3"\nregoin = "eu-west-1"\n', "stores.s3x.regoin", "did you mean 'region'?"),
        ],
    )
    def test_did_you_mean(self, tmp_path: Path, snippet: str, path: str, hint: str) -> None:
        """A misspelt key gets the closest known key as a hint."""
        issues = by_path(issues_of(write(tmp_path / "retention.toml", snippet + "\n" + SMALL)))
        assert hint in issues[path].message

    def test_unknown_key_lists_known_keys(self, tmp_path: Path) -> None:
        """With no close match, the message lists the keys that are allowed."""
        text = SMALL.replace('age_column = "closed_at"', 'age_column = "closed_at"\nzzz = 1', 1)
        issue = by_path(issues_of(write(tmp_path / "retention.toml", text)))["categories.support.sql[0].zzz"]
        assert (
            "known keys: age_column, age_timezone, anonymize, archive_schema, history, key, match, store, "
            "subject_column, table" in issue.message
        )

    def test_unknown_store_hint(self, tmp_path: Path) -> None:
        """A target naming an unknown store gets a did-you-mean too."""
        text = SMALL.replace('store = "app"', 'store = "apps"', 1)
        issue = by_path(issues_of(write(tmp_path / "retention.toml", text)))["categories.support.sql[0].store"]
        assert ("unknown store 'apps'; did you mean 'app'?", 10) == (issue.message, issue.line)

    def test_type_confusion_names_both_types(self, tmp_path: Path) -> None:
        """A wrong TOML type says what was expected and what was found."""
        text = '[daemon]\nbatch_size = "5000"\n' + SMALL
        assert (
            "must be an integer, got a string"
            == by_path(issues_of(write(tmp_path / "r.toml", text)))["daemon.batch_size"].message
        )

    def test_missing_key(self, tmp_path: Path) -> None:
        """A required key that is absent is named with its full path."""
        text = SMALL.replace('  age_column = "closed_at"\n', "", 1)
        issue = by_path(issues_of(write(tmp_path / "r.toml", text)))["categories.support.sql[0].age_column"]
        assert ("required key is missing", 9) == (issue.message, issue.line)

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty file is an error: a config without categories enforces nothing."""
        assert ["categories"] == [i.path for i in issues_of(write(tmp_path / "r.toml", ""))]

    def test_non_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are reported with their line, not a traceback."""
        path = tmp_path / "r.toml"
        path.write_bytes(b'[daemon]\ntimezone = "Z\xfcrich"\n')
        issue = issues_of(path)[0]
        assert ("", 2, True) == (issue.path, issue.line, "UTF-8" in issue.message)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a config error."""
        assert "file not found" == issues_of(tmp_path / "nope.toml")[0].message

    def test_never_echoes_password(self, tmp_path: Path) -> None:
        """The message about an inline password does not repeat the password."""
        text = SMALL.replace('url_env = "APP_DB_URL"', 'url = "postgresql://app:hunter2@db/app"')
        error = pytest.raises(ConfigError, load_config, write(tmp_path / "r.toml", text)).value
        assert ("stores.app.url", False) == (error.issues[0].path, "hunter2" in str(error))

    def test_retain_below_minimum(self, tmp_path: Path) -> None:
        """retain is compared with daemon.min_retention across units (4w < 1mo)."""
        text = '[daemon]\nmin_retention = "1mo"\n' + SMALL.replace('retain = "2y"', 'retain = "4w"')
        issue = by_path(issues_of(write(tmp_path / "r.toml", text)))["categories.support.retain"]
        assert "4w is below daemon.min_retention (1mo)" == issue.message


class TestLines:
    """Lines are found for headers, keys, arrays of tables and inline tables."""

    TEXT = """\
    # comment
    [daemon]
    schedule = "15 3 * * *"

    [categories.a]
    retain = "1y"

      [[categories.a.sql]]
      table = "t1"

      [[categories.a.sql]]
      table = "t2"
      history = { table = "h", key = ["v"] }

    [[categories.b.sql]]
    table = "t3"

    [[hold]]
    id = "x"
    [[hold]]
    id = "y"
    """

    @pytest.mark.parametrize(
        ("path", "line"),
        [
            ("daemon", 2),
            ("daemon.schedule", 3),
            ("categories.a", 5),
            ("categories.a.retain", 6),
            ("categories.a.sql[0]", 8),
            ("categories.a.sql[0].table", 9),
            ("categories.a.sql[1]", 11),
            ("categories.a.sql[1].table", 12),
            ("categories.a.sql[1].history", 13),
            ("categories.a.sql[1].history.key[0]", 13),
            ("categories.a.sql[1].missing", 11),
            ("categories.b.sql[0].table", 16),
            ("categories.b", 15),
            ("categories", 5),
            ("hold[0].id", 19),
            ("hold[1].id", 21),
            ("hold[1]", 20),
            ("nowhere", None),
        ],
    )
    def test_find_line(self, path: str, line: int | None) -> None:
        """find_line() gives the line of a path or of its nearest ancestor."""
        assert line == find_line(line_index(textwrap.dedent(self.TEXT)), path)

    def test_inline_table_error_line(self, tmp_path: Path) -> None:
        """An error inside an inline table is reported at the inline table's line."""
        text = SMALL.replace(
            'age_column = "closed_at"\n',
            'age_column = "closed_at"\n'
            '  history = { table = "h", key = ["v"], parent = ["id"], superseded_column = "1bad" }\n',
            1,
        )
        issue = by_path(issues_of(write(tmp_path / "r.toml", text)))[
            "categories.support.sql[0].history.superseded_column"
        ]
        assert 14 == issue.line

    def test_second_array_element_line(self, tmp_path: Path) -> None:
        """An error in the second [[...sql]] of a category points into that block."""
        text = (
            SMALL
            + '\n  [[categories.billing.sql]]\n  store = "app"\n  table = "a b"\n  key = ["id"]\n  age_column = "t"\n'
        )
        issue = by_path(issues_of(write(tmp_path / "r.toml", text)))["categories.billing.sql[1].table"]
        assert 27 == issue.line


class TestHolds:
    """The holds files: the same strictness, plus dates read protectively."""

    def test_valid(self, tmp_path: Path) -> None:
        """A valid file gives its holds and the file's hash."""
        path = write(
            tmp_path / "holds.toml",
            hold_block() + hold_block(id='"TAX-7Y"', kind='"tax"', categories='["*"]', keep_younger_than='"7y"'),
        )
        snapshot = load_holds(path, ["support"])
        assert (["LIT-1", "TAX-7Y"], [str(path)]) == ([h.id for h in snapshot.holds], list(snapshot.files))

    def test_directory(self, tmp_path: Path) -> None:
        """A directory contributes every *.toml in name order; other files are ignored."""
        write(tmp_path / "h" / "b.toml", hold_block(id='"B"'))
        write(tmp_path / "h" / "a.toml", hold_block(id='"A"'))
        write(tmp_path / "h" / "notes.txt", "not a hold")
        assert ["A", "B"] == [h.id for h in load_holds(tmp_path / "h", ["support"]).holds]

    def test_duplicate_ids_across_files(self, tmp_path: Path) -> None:
        """The same id in two files of a holds directory is an error naming both files."""
        first = write(tmp_path / "h" / "a.toml", hold_block())
        second = write(tmp_path / "h" / "b.toml", hold_block(id='"OTHER"') + hold_block())
        issue = holds_issues(tmp_path / "h")[0]
        assert ("hold[1].id", str(second), 10, True) == (
            issue.path,
            issue.file,
            issue.line,
            str(first) in issue.message,
        )

    def test_unknown_category_hint(self, tmp_path: Path) -> None:
        """An unknown category is named with a did-you-mean hint."""
        issue = holds_issues(write(tmp_path / "h.toml", hold_block(categories='["support", "biling"]')))[0]
        assert ("hold[0].categories[1]", "unknown category 'biling'; did you mean 'billing'?") == (
            issue.path,
            issue.message,
        )

    def test_expires_before_placed(self, tmp_path: Path) -> None:
        """expires_at before placed_at is refused."""
        issue = holds_issues(write(tmp_path / "h.toml", hold_block(placed_at="2026-06-01", expires_at="2026-05-31")))[0]
        assert ("hold[0]", "expires_at is before placed_at") == (issue.path, issue.message)

    def test_same_day_hold_is_valid(self, tmp_path: Path) -> None:
        """placed_at and expires_at on the same date protect that one whole day."""
        hold = load_holds(
            write(tmp_path / "h.toml", hold_block(placed_at="2026-06-01", expires_at="2026-06-01")), ["support"]
        ).holds[0]
        assert timedelta(days=1) == hold.expires_at - hold.placed_at  # type: ignore[operator]

    @pytest.mark.parametrize("field", ["placed_at", "expires_at"])
    def test_naive_datetime_refused(self, tmp_path: Path, field: str) -> None:
        """A date-time without an offset is refused: Legal must say which zone."""
        issue = holds_issues(write(tmp_path / "h.toml", hold_block(**{field: "2026-12-01T09:00:00"})))[0]
        assert (f"hold[0].{field}", True) == (issue.path, "needs an offset" in issue.message)

    def test_date_semantics(self, tmp_path: Path) -> None:
        """placed_at date starts at 00:00 UTC; expires_at date protects through that whole day."""
        hold = load_holds(
            write(tmp_path / "h.toml", hold_block(placed_at="2026-10-01", expires_at="2027-12-31")), ["support"]
        ).holds[0]
        expected = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
        assert expected == (hold.placed_at, hold.expires_at)

    def test_offset_datetime_converted_to_utc(self, tmp_path: Path) -> None:
        """An offset date-time is taken as the instant it names, in UTC."""
        hold = load_holds(
            write(tmp_path / "h.toml", hold_block(placed_at="2026-10-01T09:00:00+02:00")), ["support"]
        ).holds[0]
        assert datetime(2026, 10, 1, 7, 0, tzinfo=UTC) == hold.placed_at

    def test_all_errors_together(self, tmp_path: Path) -> None:
        """Errors of several holds and files are reported in one go."""
        write(tmp_path / "h" / "a.toml", hold_block(kind='"lawsuit"') + hold_block(id='"X"', reason='" "'))
        write(tmp_path / "h" / "b.toml", hold_block(id='"Y"', categories='["nope"]'))
        write(tmp_path / "h" / "c.toml", "[[hold]\n")
        paths = sorted(i.path for i in holds_issues(tmp_path / "h"))
        assert ["", "hold[0].categories[0]", "hold[0].kind", "hold[1].reason"] == paths

    def test_missing(self, tmp_path: Path) -> None:
        """A missing holds file is an error (fail closed), not an empty set of holds."""
        assert "holds file not found" == holds_issues(tmp_path / "absent.toml")[0].message

    def test_digest_changes_with_content(self, tmp_path: Path) -> None:
        """The snapshot digest changes when a file changes."""
        path = write(tmp_path / "h.toml", hold_block())
        before = load_holds(path, ["support"]).digest
        write(path, hold_block(reason='"Changed"'))
        assert before != load_holds(path, ["support"]).digest
