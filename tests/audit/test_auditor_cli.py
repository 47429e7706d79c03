"""Issue 11 through the command line: auditor-only and owner-only configs, find by object key,
repeated filters, --state, keys and rotation, windows, and who ran a run. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from retentiond.audit import Action, Batch, BatchId, Ledger, Outcome, RefMaker
from retentiond.audit.schema import entries_table, refs_table
from tests.audit.conftest import HMAC_KEY, Result, tamper_db

AUDITOR = """\
[audit]
url = "{url}"
hmac_key_file = "hmac.key"
"""

OWNER = """\
[audit]
url = "{url}"
"""


def _auditor(setup: dict[str, object], name: str = "auditor.toml") -> Path:
    path = Path(str(setup["dir"])) / name
    path.write_text(AUDITOR.format(url=setup["url"]), encoding="utf-8")
    return path


def _pub(setup: dict[str, object]) -> Path:
    return Path(str(setup["dir"])) / "keys" / "audit-signing.pub.pem"


def _s3_batch(url: str, outcome: Outcome, items: list[tuple[str, str]], run: str) -> None:
    maker = RefMaker(HMAC_KEY)
    with Ledger.open(url) as ledger:
        versions = tuple(maker.s3("files", "attachments", k, v) for k, v in items)
        objects = tuple(maker.s3_object("files", "attachments", k) for k, _ in items)
        refs, object_refs = Batch.split(versions + objects, len(items))  # as the relay splits an S3 outcome row
        ledger.append(
            Batch(
                batch_id=BatchId.new(),
                category="support",
                store="files",
                target="attachments",
                action=Action.DELETE,
                outcome=outcome,
                count=len(items),
                refs=refs,
                object_refs=object_refs,
            ),
            run_id=run,
        )


class TestAuditorOnlyConfig:
    """A config with only [audit] serves every audit command; run/plan/daemon still refuse it."""

    def test_audit_commands(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        config = _auditor(setup)
        verify = cli("audit", "verify", "-c", config, "--pubkey", _pub(setup))
        show = cli("audit", "show", "-c", config, "--format", "json")
        find = cli("audit", "find", "-c", config, "--store", "app", "--table", "tickets", "--key", "4")
        export = cli("audit", "export", "-c", config, "--format", "jsonl")
        keys = cli("audit", "keys", "-c", config)
        assert (0, 8, 0, 0, 0) == (verify.code, len(show.stdout.splitlines()), find.code, export.code, keys.code)
        assert (True, True) == (verify.stdout.startswith("OK "), find.stdout.startswith("deleted on "))

    def test_verify_without_any_key_says_to_give_one(
        self, setup: dict[str, object], cli: Callable[..., Result]
    ) -> None:
        result = cli("audit", "verify", "-c", _auditor(setup))
        assert (2, True) == (result.code, "give --pubkey FILE" in result.stderr)

    def test_run_plan_daemon_refuse_it(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        config = _auditor(setup)
        codes = [cli(*cmd, "-c", config) for cmd in (("run",), ("plan",), ("config", "validate"))]
        assert [78, 78, 78] == [r.code for r in codes]
        assert all("no categories defined" in r.stderr for r in codes)

    def test_owner_config_init(
        self, url_factory: Callable[[], str], tmp_path: Path, cli: Callable[..., Result]
    ) -> None:
        config = tmp_path / "owner.toml"
        config.write_text(OWNER.format(url=url_factory()), encoding="utf-8")
        result = cli("audit", "init", "-c", config)
        assert (0, "audit ledger retentiond ready: 0 entries\n") == (result.code, result.stdout)

    def test_file_needs_no_config_but_a_pubkey(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        export = Path(str(setup["dir"])) / "export.jsonl"
        assert 0 == cli("audit", "export", "-c", setup["config"], "--format", "jsonl", "--out", export).code
        without = cli("audit", "verify", "--file", export, "-c", "/nonexistent.toml")
        with_key = cli("audit", "verify", "--file", export, "--pubkey", _pub(setup), "-c", "/nonexistent.toml")
        assert (2, "--file needs --pubkey" in without.stderr, 0) == (
            without.code,
            True,
            with_key.code,
        )


class TestFindObject:
    """An S3 object is found by bucket and key alone: every version's outcome."""

    def test_every_version_by_key(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        url = str(setup["url"])
        _s3_batch(url, Outcome.DELETED, [("t/1.pdf", "v1"), ("t/1.pdf", "v2"), ("t/2.pdf", "v7")], "run-3")
        _s3_batch(url, Outcome.BLOCKED, [("t/1.pdf", "v3")], "run-3")
        config = _auditor(setup)
        found = cli(
            "audit", "find", "-c", config, "--store", "files", "--bucket", "attachments", "--object-key", "t/1.pdf"
        )
        one = cli(
            "audit",
            "find",
            "-c",
            config,
            "--store",
            "files",
            "--bucket",
            "attachments",
            "--object-key",
            "t/1.pdf",
            "--version-id",
            "v3",
        )
        as_json = cli(
            "audit",
            "find",
            "-c",
            config,
            "--store",
            "files",
            "--bucket",
            "attachments",
            "--object-key",
            "t/1.pdf",
            "--format",
            "json",
        )
        lines = found.stdout.splitlines()
        assert (2, True, True) == (
            len(lines),
            lines[0].startswith("deleted 2 versions on "),
            lines[1].startswith("blocked (object lock) 1 version on "),
        )
        assert one.stdout.startswith("blocked (object lock) on ")
        versions = [e.get("version_refs") for e in json.loads(as_json.stdout)["entries"]]
        maker = RefMaker(HMAC_KEY)
        assert [
            [maker.s3("files", "attachments", "t/1.pdf", v).hex() for v in ("v1", "v2")],
            [maker.s3("files", "attachments", "t/1.pdf", "v3").hex()],
        ] == versions
        exported = cli("audit", "export", "-c", config, "--format", "jsonl").stdout
        assert (False, False) == ("t/1.pdf" in exported, "t/1.pdf" in found.stdout)

    def test_nothing_recorded_says_so_with_present_state(
        self, setup: dict[str, object], cli: Callable[..., Result]
    ) -> None:
        config = _auditor(setup)
        auditor = cli("audit", "find", "-c", config, "--store", "app", "--table", "tickets", "--key", "99")
        full = cli("audit", "find", "-c", setup["config"], "--store", "app", "--table", "tickets", "--key", "99")
        assert auditor.stdout.startswith("no outcome recorded: the ledger has no entry for this app/tickets key")
        assert "present state not available: this config has no categories" in auditor.stdout
        assert "present state not available:" in full.stdout  # the store's URL variable is unset here
        assert 0 == full.code


class TestShowFilters:
    """--event and --category accept repeats (any of them matches)."""

    def test_repeated_event(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        result = cli(
            "audit",
            "show",
            "-c",
            setup["config"],
            "--event",
            "checkpoint",
            "--event",
            "run_finished",
            "--format",
            "json",
        )
        events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
        assert ["run_finished", "checkpoint", "run_finished", "checkpoint"] == events


class TestStateAndAnchorCli:
    """--state makes rollback visible to the auditor's cron job."""

    def test_state_rollback(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        state = Path(str(setup["dir"])) / "auditor.state"
        config = _auditor(setup)
        first = cli("audit", "verify", "-c", config, "--pubkey", _pub(setup), "--state", state)
        tamper_db(
            str(setup["url"]),
            sa.delete(entries_table).where(entries_table.c.seq > 4),
            sa.delete(refs_table).where(refs_table.c.seq > 4),
        )
        from retentiond.audit.schema import head_table

        tamper_db(
            str(setup["url"]),
            sa.update(head_table).values(
                seq=4, hash=sa.select(entries_table.c.hash).where(entries_table.c.seq == 4).scalar_subquery()
            ),
        )
        again = cli("audit", "verify", "-c", config, "--pubkey", _pub(setup), "--state", state)
        assert (0, 65, "FAILED seq 5: rolled_back:") == (first.code, again.code, again.stdout[:26])


class TestKeysCli:
    """rotate-key records the change; keys lists both keys; verify needs only the first key."""

    def test_rotate_and_list(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        directory = Path(str(setup["dir"]))
        assert 0 == cli("audit", "keygen", "--out-dir", directory / "keys2").code
        rotated = cli(
            "audit", "rotate-key", "-c", setup["config"], "--new-key", directory / "keys2" / "audit-signing.pem"
        )
        refused = cli("audit", "checkpoint", "-c", setup["config"])  # still configured with the old key
        keys = cli("audit", "keys", "-c", _auditor(setup), "--format", "json")
        verify = cli("audit", "verify", "-c", _auditor(setup), "--pubkey", _pub(setup))
        periods = json.loads(keys.stdout)
        assert (0, 78, 0) == (rotated.code, refused.code, verify.code)
        assert ["first checkpoint", "rotation"] == [p["vouched_by"] for p in periods]
        assert "key_rotations=1" in verify.stdout


@pytest.fixture
def hold_config(tmp_path: Path, url_factory: Callable[[], str]) -> Path:
    """A config with one category and a holds file with a labelled hold."""
    (tmp_path / "hmac.key").write_bytes(HMAC_KEY)
    (tmp_path / "holds.toml").write_text(
        '[[hold]]\nid = "LIT-1"\nkind = "legal"\nreason = "Preservation notice, Acme v. Example Corp"\n'
        'reference = "Matter 2026-014"\nplaced_by = "j.doe@legal"\nplaced_at = 2026-01-01\ncategories = ["support"]\n',
        encoding="utf-8",
    )
    config = tmp_path / "retention.toml"
    config.write_text(
        f'[daemon]\nholds_file = "holds.toml"\nstate_dir = "state"\n[audit]\nurl = "{url_factory()}"\n'
        'hmac_key_file = "hmac.key"\n[stores.app]\nkind = "sql"\nurl_env = "X_UNSET"\n'
        '[categories.support]\nretain = "2y"\naction = "delete"\n[[categories.support.sql]]\nstore = "app"\n'
        'table = "t"\nkey = ["id"]\nage_column = "closed_at"\n',
        encoding="utf-8",
    )
    return config


class TestHoldEventFields:
    """Hold events record who placed the hold and its reference as labels, the reason only as an HMAC."""

    def test_placed_by_reference_reason_hmac(self, hold_config: Path) -> None:
        from datetime import UTC, datetime

        from retentiond.actions.holdwatch import HoldWatcher
        from retentiond.actions.setup import ledger_url
        from retentiond.config.loader import load_config

        loaded = load_config(hold_config)
        maker = RefMaker(HMAC_KEY)
        with Ledger.open(ledger_url(loaded)) as ledger:
            HoldWatcher(loaded, ledger=ledger, refs=maker, run_id="r-1", record_changes=True).refresh(datetime.now(UTC))
            (entry,) = ledger.entries(event="hold_placed")
        assert ("j.doe@legal", "Matter 2026-014", maker.hold_reason("Preservation notice, Acme v. Example Corp")) == (
            entry.fields["placed_by"],
            entry.fields["reference"],
            entry.fields["reason_hmac"],
        )
        assert "Acme" not in entry.fields_json

    def test_free_text_placed_by_refused(self, hold_config: Path, cli: Callable[..., Result]) -> None:
        holds = hold_config.parent / "holds.toml"
        holds.write_text(holds.read_text().replace('"j.doe@legal"', '"John Doe, legal dept."'), encoding="utf-8")
        result = cli("config", "validate", "-c", hold_config)
        assert (78, True) == (result.code, "hold[0].placed_by: invalid label" in result.stderr)


class TestActor:
    """run_started names the unit or the OS user and SUDO_USER; --allow-large needs a ticket label."""

    def test_unit_from_cgroup(self, tmp_path: Path) -> None:
        from retentiond.audit.actor import Actor

        cgroup = tmp_path / "cgroup"
        cgroup.write_text("0::/system.slice/retentiond.service\n", encoding="utf-8")
        actor = Actor.of_this_process({"SUDO_USER": "j.doe"}, cgroup)
        assert ("retentiond.service", "j.doe", True) == (actor.unit, actor.sudo_user, actor.user is not None)

    def test_session_scope_is_not_a_unit(self, tmp_path: Path) -> None:
        from retentiond.audit.actor import Actor

        cgroup = tmp_path / "cgroup"
        cgroup.write_text("0::/user.slice/user-1000.slice/session-3.scope\n", encoding="utf-8")
        actor = Actor.of_this_process({}, cgroup)
        assert (None, None) == (actor.unit, actor.sudo_user)

    @pytest.mark.parametrize(
        ("reference", "allow_large", "ok"),
        [(None, True, False), ("CHG-1234", True, True), ("fix it now, please", False, False), (None, False, True)],
    )
    def test_reference(self, reference: str | None, allow_large: bool, ok: bool) -> None:
        from retentiond.audit.actor import check_reference

        if ok:
            assert reference == check_reference(reference, allow_large=allow_large)
        else:
            with pytest.raises(ValueError):
                check_reference(reference, allow_large=allow_large)

    def test_allow_large_without_reference_is_usage(self, hold_config: Path, cli: Callable[..., Result]) -> None:
        result = cli("run", "-c", hold_config, "--allow-large")
        assert (2, True) == (result.code, "--reference TICKET" in result.stderr)


class TestAnchorAbsence:
    """A configured anchor bucket that holds no checkpoint is reported, not silently skipped."""

    def test_empty_anchor_reported(
        self, setup: dict[str, object], cli: Callable[..., Result], s3_client: object, s3_endpoint: str
    ) -> None:
        from tests.audit.test_cli import ANCHOR

        s3_client.create_bucket(Bucket="audit-anchors", ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
        config = Path(str(setup["config"]))
        config.write_text(
            config.read_text().replace(
                "[categories.support]", ANCHOR.format(endpoint=s3_endpoint) + "\n[categories.support]"
            )
        )
        result = cli("audit", "verify", "-c", config)
        skipped = cli("audit", "verify", "-c", config, "--no-anchor")
        assert (0, True) == (result.code, "holds no checkpoint: nothing anchored yet" in result.stderr)
        assert "the anchor bucket was not read (--no-anchor)" in skipped.stderr
