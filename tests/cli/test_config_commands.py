"""``retentiond config validate|show`` and ``retentiond holds list`` (SPEC §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIG = """\
[daemon]
holds_file = "holds.toml"
state_dir = "state"

[audit]
url = "sqlite:///audit.db"

[stores.app]
kind = "sql"
url_env = "RETENTIOND_APP_DB_URL"

[stores.files]
kind = "s3"
endpoint_url = "http://s3user@minio.internal:9000"

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

HOLDS = """\
[[hold]]
id = "TAX-7Y"
kind = "tax"
reason = "Statutory record keeping"
placed_by = "finance"
placed_at = 2026-01-01
categories = ["billing"]
keep_younger_than = "7y"

[[hold]]
id = "LIT-1"
kind = "legal"
reason = "Preservation notice"
placed_by = "j.doe@legal"
placed_at = 2026-10-01
expires_at = 2027-12-31
categories = ["support"]
subjects = ["acct_1042"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A valid config with two categories and a holds file next to it."""
    (tmp_path / "holds.toml").write_text(HOLDS, encoding="utf-8")
    path = tmp_path / "retention.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


class TestValidate:
    """`config validate` exits 0 listing the categories, or 78 listing every error."""

    def test_ok_lists_categories(self, run_cli, config: Path) -> None:
        """A valid config exits 0 and names each category with its period."""
        result = run_cli("config", "validate", "-c", config)
        rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[3:]}
        assert (0, {"support": "2y", "billing": "7y"}, True) == (
            result.code,
            rows,
            "2 categories, 2 holds" in result.stdout,
        )

    def test_ok_json(self, run_cli, config: Path) -> None:
        """--format json prints one JSON document with the categories and the hold count."""
        result = run_cli("config", "validate", "-c", config, "--format", "json")
        data = json.loads(result.stdout)
        assert (0, True, ["billing", "support"], 2) == (
            result.code,
            data["ok"],
            sorted(data["categories"]),
            data["holds"],
        )

    def test_invalid_exits_78_with_every_error(self, run_cli, tmp_path: Path) -> None:
        """Several errors are all listed on stderr, each with file:line: path."""
        path = tmp_path / "bad.toml"
        path.write_text(
            CONFIG.replace('retain = "2y"', 'retain = "6m"')
            .replace('table = "invoices"', 'table = "a;b"')
            .replace("[audit]", "[audit]\nurll = 1")
        )
        result = run_cli("config", "validate", "-c", path)
        expected = [
            "retentiond: 3 error(s):",
            f"  {path}:6: audit.urll: unknown key; did you mean 'url'?",
            f"  {path}:18: categories.support.retain:",
            f"  {path}:33: categories.billing.sql[0].table:",
        ]
        lines = result.stderr.splitlines()
        assert (78, expected) == (result.code, [line[: len(e)] for line, e in zip(lines, expected, strict=False)])

    def test_invalid_json(self, run_cli, tmp_path: Path) -> None:
        """With --format json the issues are also a JSON document on stdout."""
        path = tmp_path / "bad.toml"
        path.write_text(CONFIG.replace('retain = "2y"', 'retain = "0d"'))
        result = run_cli("--format", "json", "config", "validate", "-c", path)
        data = json.loads(result.stdout)
        assert (78, False, ["categories.support.retain"]) == (
            result.code,
            data["ok"],
            [i["path"] for i in data["issues"]],
        )

    def test_bad_holds_exit_78(self, run_cli, config: Path) -> None:
        """An invalid holds file makes validate fail with the hold's path."""
        (config.parent / "holds.toml").write_text(HOLDS.replace('"billing"]', '"biling"]'))
        result = run_cli("config", "validate", "-c", config)
        assert (78, True) == (
            result.code,
            "hold[0].categories[0]: unknown category 'biling'; did you mean 'billing'?" in result.stderr,
        )

    def test_missing_holds_exit_78(self, run_cli, config: Path) -> None:
        """A missing holds file is an error (holds fail closed)."""
        (config.parent / "holds.toml").unlink()
        result = run_cli("config", "validate", "-c", config)
        assert (78, True) == (result.code, "holds file not found" in result.stderr)

    def test_missing_config_exit_78(self, run_cli, tmp_path: Path) -> None:
        """A config path that does not exist exits 78, not 2, and without a traceback."""
        result = run_cli("config", "validate", "-c", tmp_path / "nope.toml")
        assert (78, True, False) == (result.code, "file not found" in result.stderr, "Traceback" in result.output)


class TestShow:
    """`config show` prints the effective config and never a secret."""

    ENV = {"RETENTIOND_APP_DB_URL": "postgresql://u:hunter2@h/db"}

    @pytest.mark.parametrize("fmt", ["text", "json"])
    def test_env_secret_never_printed(self, run_cli, config: Path, fmt: str) -> None:
        """The value of a url_env variable never appears; the variable's name does."""
        result = run_cli("config", "show", "-c", config, "--format", fmt, env=self.ENV)
        assert (0, False, True) == (result.code, "hunter2" in result.output, "RETENTIOND_APP_DB_URL" in result.stdout)

    def test_json_has_defaults(self, run_cli, config: Path) -> None:
        """The JSON dump includes defaults filled in (batch_size 5000) and periods as strings."""
        data = json.loads(run_cli("config", "show", "-c", config, "--format", "json").stdout)
        assert (5000, "7d", "2y") == (
            data["daemon"]["batch_size"],
            data["daemon"]["hold_release_grace"],
            data["categories"]["support"]["retain"],
        )

    def test_user_info_redacted(self, run_cli, config: Path) -> None:
        """User names in inline URLs are masked."""
        result = run_cli("config", "show", "-c", config)
        assert (0, False) == (result.code, "s3user" in result.stdout)

    def test_text_is_toml(self, run_cli, config: Path) -> None:
        """The text form parses as TOML (after the comment line)."""
        import tomllib

        data = tomllib.loads(run_cli("config", "show", "-c", config).stdout)
        assert ["daemon", "audit", "stores", "categories"] == list(data)


class TestHoldsList:
    """`holds list` shows each hold's state at a time."""

    def test_json(self, run_cli, config: Path) -> None:
        """--format json is valid JSON with every hold and its state."""
        result = run_cli("holds", "list", "-c", config, "--format", "json", "--at", "2026-11-01T00:00:00Z")
        data = json.loads(result.stdout)
        states = {h["id"]: (h["state"], h["protecting"]) for h in data["holds"]}
        assert (0, {"TAX-7Y": ("active", True), "LIT-1": ("active", True)}) == (result.code, states)

    @pytest.mark.parametrize(
        ("when", "state"),
        [("2026-09-30T23:59:59Z", "not_yet_active"), ("2027-12-31T23:59:59Z", "expiring"), ("2028-01-01", "expired")],
    )
    def test_at(self, run_cli, config: Path, when: str, state: str) -> None:
        """--at evaluates the holds at another time; the expires_at date protects through that day."""
        data = json.loads(run_cli("holds", "list", "-c", config, "--format", "json", "--at", when).stdout)
        assert state == {h["id"]: h["state"] for h in data["holds"]}["LIT-1"]

    def test_text(self, run_cli, config: Path) -> None:
        """The text form is a table with one row per hold."""
        result = run_cli("holds", "list", "-c", config, "--at", "2026-11-01")
        ids = [line.split()[0] for line in result.stdout.splitlines()[3:]]
        assert (0, ["TAX-7Y", "LIT-1"]) == (result.code, ids)

    def test_subjects_not_printed(self, run_cli, config: Path) -> None:
        """Subject ids are personal data: only their number is shown."""
        result = run_cli("holds", "list", "-c", config, "--format", "json")
        assert (0, False) == (result.code, "acct_1042" in result.stdout)


class TestOptionPlacement:
    """Global options work before the command and after the sub-command."""

    def test_global_before(self, run_cli, config: Path) -> None:
        """retentiond -c F holds list."""
        result = run_cli("-c", config, "holds", "list")
        assert (0, True) == (result.code, "TAX-7Y" in result.stdout)

    def test_after_subcommand(self, run_cli, config: Path) -> None:
        """retentiond holds list -c F --format json."""
        result = run_cli("holds", "list", "-c", config, "--format", "json")
        assert (0, ["TAX-7Y", "LIT-1"]) == (result.code, [h["id"] for h in json.loads(result.stdout)["holds"]])

    def test_format_before_config_after(self, run_cli, config: Path) -> None:
        """retentiond --format json config validate -c F."""
        result = run_cli("--format", "json", "config", "validate", "-c", config)
        assert (0, True) == (result.code, json.loads(result.stdout)["ok"])

    def test_nearest_wins(self, run_cli, config: Path, tmp_path: Path) -> None:
        """An option after the sub-command overrides the same option before the command."""
        result = run_cli("-c", tmp_path / "nope.toml", "config", "validate", "-c", config)
        assert 0 == result.code

    def test_env_default(self, run_cli, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without -c, $RETENTIOND_CONFIG names the config."""
        monkeypatch.setenv("RETENTIOND_CONFIG", str(config))
        assert 0 == run_cli("config", "validate").code


class TestUsage:
    """Bad arguments exit 2 with a usage message, never a traceback."""

    @pytest.mark.parametrize(
        "args",
        [
            ["holds", "list", "--bogus"],
            ["--format", "yaml", "config", "validate"],
            ["holds", "list", "--at", "yesterday"],
            ["config", "nope"],
            ["nope"],
            ["--log-level", "loud", "config", "validate"],
        ],
    )
    def test_exit_2(self, run_cli, config: Path, args: list[str]) -> None:
        """Unknown options, commands and bad values exit 2."""
        result = run_cli(*args, "-c", config) if args[0] not in ("nope",) else run_cli(*args)
        assert (2, False, True) == (
            result.code,
            "Traceback" in result.output,
            "Usage:" in result.stderr or "Error" in result.stderr,
        )

    def test_help(self, run_cli) -> None:
        """--help exits 0 and documents the exit codes."""
        result = run_cli("--help")
        assert (0, True) == (result.code, "78 invalid configuration" in result.stdout)
