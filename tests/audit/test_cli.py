"""``retentiond audit …`` end to end: verify (exit 0 / 65), show, find, export, keygen, checkpoint."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from retentiond.audit import (
    Action,
    Batch,
    BatchId,
    Ledger,
    Outcome,
    RefMaker,
)
from retentiond.audit.schema import entries_table, head_table, refs_table
from tests.audit.conftest import HMAC_KEY, Result, tamper_db


class TestVerify:
    """audit verify: 0 with a summary, 65 naming the first bad seq."""

    def test_fresh_ledger_ok(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        result = cli("audit", "verify", "-c", setup["config"])
        assert (0, True) == (result.code, result.stdout.startswith("OK ledger=retentiond entries=8 refs=7 head_seq=8"))

    def test_changed_entry_exits_65_naming_seq(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        tamper_db(
            str(setup["url"]), sa.update(entries_table).where(entries_table.c.seq == 5).values(category="billing")
        )
        result = cli("audit", "verify", "-c", setup["config"])
        assert (65, "FAILED seq 5: modified:") == (result.code, result.stdout[:23])

    def test_last_three_deleted_with_trusted_checkpoint(
        self, setup: dict[str, object], cli: Callable[..., Result]
    ) -> None:
        trusted = Path(str(setup["dir"])) / "trusted.json"
        shown = cli("audit", "show", "-c", setup["config"], "--event", "checkpoint", "--format", "json", "--limit", "1")
        trusted.write_text(shown.stdout, encoding="utf-8")
        tamper_db(
            str(setup["url"]),
            sa.delete(entries_table).where(entries_table.c.seq > 4),
            sa.delete(refs_table).where(refs_table.c.seq > 4),
            sa.update(head_table).values(
                seq=4, hash=sa.select(entries_table.c.hash).where(entries_table.c.seq == 4).scalar_subquery()
            ),
        )
        # Cut right after a checkpoint and covered up: invisible without outside state.
        assert 0 == cli("audit", "verify", "-c", setup["config"]).code
        result = cli("audit", "verify", "-c", setup["config"], "--trusted-checkpoint", trusted)
        assert (65, "FAILED seq 5: truncated:") == (result.code, result.stdout[:24])

    def test_offline_export(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        export = Path(str(setup["dir"])) / "export.jsonl"
        assert 0 == cli("audit", "export", "-c", setup["config"], "--format", "jsonl", "--out", export).code
        pub = Path(str(setup["dir"])) / "keys" / "audit-signing.pub.pem"
        ok = cli("audit", "verify", "--file", export, "--pubkey", pub)  # no config at all
        lines = export.read_text().splitlines()
        forged = json.loads(lines[3])
        forged["fields"]["count"] = 2
        lines[3] = json.dumps(forged)
        export.write_text("\n".join(lines) + "\n")
        bad = cli("audit", "verify", "--file", export, "--pubkey", pub, "--format", "json")
        assert (0, 65, 3, "modified") == (
            ok.code,
            bad.code,
            json.loads(bad.stdout)["damage"]["seq"],
            json.loads(bad.stdout)["damage"]["kind"],
        )

    def test_wrong_pubkey_exits_65(self, setup: dict[str, object], cli: Callable[..., Result], tmp_path: Path) -> None:
        cli("audit", "keygen", "--out-dir", tmp_path / "other")
        result = cli("audit", "verify", "-c", setup["config"], "--pubkey", tmp_path / "other" / "audit-signing.pub.pem")
        assert (65, "bad_signature") == (result.code, result.stdout.split(": ")[1])

    def test_unreachable_ledger_exits_75(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        config = Path(str(setup["config"]))
        config.write_text(config.read_text().replace(str(setup["url"]), "postgresql+psycopg://postgres@127.0.0.1:1/x"))
        result = cli("audit", "verify", "-c", config)
        assert (75, "Traceback" in result.stderr) == (result.code, False)

    def test_missing_pubkey_file_is_usage_error(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        result = cli("audit", "verify", "-c", setup["config"], "--pubkey", "/nonexistent.pem")
        assert (2, False) == (result.code, "Traceback" in result.stderr)


class TestShowFindExport:
    """show, find and export for people and spreadsheets."""

    def test_show_table_and_filters(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        table = cli("audit", "show", "-c", setup["config"])
        json_lines = cli(
            "audit", "show", "-c", setup["config"], "--category", "support", "--format", "json"
        ).stdout.splitlines()
        assert (0, 9, 4) == (table.code, len(table.stdout.splitlines()) - 1, len(json_lines))

    def test_find_sql_key(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        hit = cli("audit", "find", "-c", setup["config"], "--store", "app", "--table", "tickets", "--key", "4")
        miss = cli("audit", "find", "-c", setup["config"], "--store", "app", "--table", "tickets", "--key", "99")
        assert (True, "run-2", True) == (
            hit.stdout.startswith("deleted on "),
            hit.stdout.split(" by run ")[1].split()[0],
            miss.stdout.startswith("no outcome recorded"),
        )

    def test_find_composite_key_both_forms(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        repeated = cli(
            "audit",
            "find",
            "-c",
            setup["config"],
            "--store",
            "app",
            "--table",
            "ticket_parts",
            "--key",
            "7",
            "--key",
            "a",
        )
        comma = cli("audit", "find", "-c", setup["config"], "--store", "app", "--table", "ticket_parts", "--key", "7,a")
        assert (2, repeated.stdout) == (len(repeated.stdout.splitlines()), comma.stdout)
        assert repeated.stdout.startswith("kept (held) on ")

    def test_find_needs_table_or_bucket(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        assert 2 == cli("audit", "find", "-c", setup["config"], "--store", "app", "--key", "1").code

    def test_csv_export(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        result = cli("audit", "export", "-c", setup["config"], "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert (8, "3", "deleted") == (len(rows), rows[0]["ref_count"], rows[0]["outcome"])

    def test_no_raw_key_in_ledger(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        export = cli("audit", "export", "-c", setup["config"], "--format", "jsonl").stdout
        assert '"ticket_id"' not in export and '"id"' not in export


class TestKeygen:
    """keygen writes a 0600 private key, a public key, and prints the fingerprint."""

    def test_keygen(self, cli: Callable[..., Result], tmp_path: Path) -> None:
        result = cli("audit", "keygen", "--out-dir", tmp_path)
        mode = stat.S_IMODE(os.stat(tmp_path / "audit-signing.pem").st_mode)
        again = cli("audit", "keygen", "--out-dir", tmp_path)
        assert (0, 0o600, 64, 2) == (
            result.code,
            mode,
            len(result.stdout.strip().removeprefix("fingerprint: ")),
            again.code,
        )


ANCHOR = """
[stores.files]
kind = "s3"
endpoint_url = "{endpoint}"

[audit.anchor]
store = "files"
bucket = "audit-anchors"
prefix = "retentiond/"
retain_days = 1
"""


class TestAnchorAndS3:
    """With [audit.anchor], checkpoints go to an Object Lock bucket and verify reads the newest."""

    def test_anchor_detects_covered_up_truncation(
        self, setup: dict[str, object], cli: Callable[..., Result], s3_client: object, s3_endpoint: str
    ) -> None:
        s3_client.create_bucket(Bucket="audit-anchors", ObjectLockEnabledForBucket=True)  # type: ignore[attr-defined]
        config = Path(str(setup["config"]))
        text = config.read_text().replace(
            "[categories.support]", ANCHOR.format(endpoint=s3_endpoint) + "\n[categories.support]"
        )
        config.write_text(text)
        assert 0 == cli("audit", "checkpoint", "-c", config).code
        ok = cli("audit", "verify", "-c", config)
        tamper_db(
            str(setup["url"]),
            sa.delete(entries_table).where(entries_table.c.seq > 7),
            sa.delete(refs_table).where(refs_table.c.seq > 7),
            sa.update(head_table).values(
                seq=7, hash=sa.select(entries_table.c.hash).where(entries_table.c.seq == 7).scalar_subquery()
            ),
        )
        bad = cli("audit", "verify", "-c", config)
        assert (0, True, 65, "FAILED seq 8: truncated") == (
            ok.code,
            "trusted=anchor s3://audit-anchors/retentiond/retentiond/00000000000000000009.json@9" in ok.stdout,
            bad.code,
            bad.stdout[:23],
        )

    def test_find_s3_object(self, setup: dict[str, object], cli: Callable[..., Result]) -> None:
        maker = RefMaker(HMAC_KEY)
        with Ledger.open(str(setup["url"])) as ledger:
            ledger.append(
                Batch(
                    batch_id=BatchId.new(),
                    category="support",
                    store="files",
                    target="attachments",
                    action=Action.DELETE,
                    outcome=Outcome.BLOCKED,
                    count=1,
                    refs=(maker.s3("files", "attachments", "t/1.pdf", "v9"),),
                ),
                run_id="run-3",
            )
        hit = cli(
            "audit",
            "find",
            "-c",
            setup["config"],
            "--store",
            "files",
            "--bucket",
            "attachments",
            "--object-key",
            "t/1.pdf",
            "--version-id",
            "v9",
        )
        other_version = cli(
            "audit",
            "find",
            "-c",
            setup["config"],
            "--store",
            "files",
            "--bucket",
            "attachments",
            "--object-key",
            "t/1.pdf",
        )
        assert (True, True) == (
            hit.stdout.startswith("blocked (object lock) on "),
            other_version.stdout.startswith("no outcome recorded"),
        )
