"""tools/verify_ledger.py, written from docs/auditing.md, agrees with `retentiond audit verify --file`
on clean exports, windows and the whole tamper matrix, on SQLite and PostgreSQL ledgers."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from retentiond.audit import KeyRing, RunStarted, Signer, VerifyPolicy, generate_key_pair, verify_export, write_export
from retentiond.audit.canonical import chain_hash, entry_body, genesis_hash, parse_time
from retentiond.audit.export import json_to_row
from retentiond.audit.schema import entries_table
from retentiond.audit.signing import load_private_key
from tests.audit.conftest import append_forged, forged_checkpoint
from tests.audit.test_tamper import POSITIONS, SCENARIOS
from tools import verify_ledger

if TYPE_CHECKING:
    from tests.audit.conftest import Harness

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "verify_ledger.py"
Verdict = tuple[bool, int | None]


def _pem(signer: Signer, path: Path) -> Path:
    path.write_bytes(
        signer.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def _export(h: Harness, path: Path, since: datetime | None = None, until: datetime | None = None) -> Path:
    with open(path, "w", encoding="utf-8") as stream:
        write_export(h.ledger, stream, since, until)
    return path


def _ours(path: Path, keys: KeyRing, trusted: list[Any]) -> Verdict:
    with open(path, encoding="utf-8") as stream:
        result = verify_export(stream, VerifyPolicy(keys=keys, trusted=tuple(trusted)))
    return result.ok, None if result.damage is None else result.damage.seq


def _theirs(path: Path, pubkeys: list[Path], trusted: Path | None, capsys: pytest.CaptureFixture[str]) -> Verdict:
    args = [str(path)] + [a for p in pubkeys for a in ("--pubkey", str(p))]
    if trusted is not None:
        args += ["--trusted", str(trusted)]
    capsys.readouterr()
    code = verify_ledger.main(args)
    out = capsys.readouterr().out
    found = re.match(r"FAILED seq (\d+):", out)
    assert code == (0 if out.startswith("OK ") else 65), out
    return code == 0, int(found.group(1)) if found else None


class Checker:
    """Runs both verifiers on one export and records any disagreement."""

    def __init__(self, tmp_path: Path, signers: list[Signer], capsys: pytest.CaptureFixture[str]) -> None:
        self.keys = KeyRing.of(*(s.public_key for s in signers))
        self.pubkeys = [_pem(s, tmp_path / f"key{i}.pub.pem") for i, s in enumerate(signers)]
        self.capsys = capsys
        self.tmp_path = tmp_path
        self.disagreements: list[str] = []
        self.verdicts: dict[str, Verdict] = {}

    def check(self, name: str, path: Path, trusted: Any = None) -> Verdict:
        trusted_path = None
        if trusted is not None:
            trusted_path = self.tmp_path / f"{name}.trusted.json"
            trusted_path.write_text(json.dumps(trusted), encoding="utf-8")
        from retentiond.audit.results import TrustedCheckpoint

        ours = _ours(path, self.keys, [TrustedCheckpoint.from_json(trusted)] if trusted else [])
        theirs = _theirs(path, self.pubkeys, trusted_path, self.capsys)
        if ours != theirs:
            self.disagreements.append(f"{name}: retentiond {ours}, verify_ledger.py {theirs}")
        self.verdicts[name] = ours
        return ours


@pytest.fixture
def checker(tmp_path: Path, signer: Signer, capsys: pytest.CaptureFixture[str]) -> Checker:
    """Both verifiers with the session's key."""
    return Checker(tmp_path, [signer], capsys)


def _rechain_file(path: Path, ledger_id: str, upto: int, edit: Callable[[dict[str, Any]], None]) -> None:
    """Edit entries 1..upto of an export with ``edit`` and recompute their hashes (no key needed)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    prev = genesis_hash(ledger_id)
    out = [lines[0]]
    for line in lines[1:]:
        entry = json.loads(line)
        if entry["seq"] <= upto:
            edit(entry)
            row = json_to_row(entry)
            body = entry_body(
                seq=row[0],
                time=row[1],
                event=row[2],
                run_id=row[3],
                category=row[4],
                batch_id=row[5],
                fields=row[6],
                refs=row[7],
            )
            entry["prev_hash"], entry["hash"] = prev.hex(), chain_hash(prev, body).hex()
            prev = bytes.fromhex(entry["hash"])
        out.append(json.dumps(entry))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


class TestTamperMatrixAgreement:
    """Same verdict and same first bad seq on every damage kind at every position."""

    def test_matrix(self, harness_factory: Callable[[], Harness], checker: Checker, tmp_path: Path) -> None:
        for name, tamper in SCENARIOS.items():
            for where, pos in POSITIONS.items():
                h = harness_factory()
                h.build()
                trusted = h.trusted_latest()
                trusted_json = h.ledger.latest_checkpoint().to_json()  # type: ignore[union-attr]
                assert (True, None) == checker.check("clean", _export(h, tmp_path / "clean.jsonl"), trusted_json)
                del trusted
                tamper(h, pos)
                path = _export(h, tmp_path / f"{name}-{where}.jsonl")
                checker.check(f"{name}@{where}", path)
                checker.check(f"{name}@{where}+trusted", path, trusted_json)
                h.close()
        assert [] == checker.disagreements
        assert [] == [n for n, (ok, _) in checker.verdicts.items() if ok and n.endswith("+trusted")]

    def test_export_level_forgeries(
        self, harness_factory: Callable[[], Harness], checker: Checker, tmp_path: Path
    ) -> None:
        h = harness_factory()
        h.build(rounds=6)
        clean = _export(h, tmp_path / "clean.jsonl")
        lines = clean.read_text(encoding="utf-8").splitlines()

        def variant(name: str, new_lines: list[str]) -> Path:
            path = tmp_path / f"{name}.jsonl"
            path.write_text("\n".join(new_lines) + "\n", encoding="utf-8")
            return path

        checker.check("clean", clean)
        # The first 23 entries edited and re-chained, the rest dropped: the checkpoints inside fail.
        prefix = variant("prefix", lines[:24])
        _rechain_file(prefix, h.ledger_id, 23, lambda e: e["fields"].update(count=1) if e["seq"] == 7 else None)
        checker.check("rechained_prefix", prefix)
        # The same, with every checkpoint removed (renumbered): nothing is signed any more.
        kept = [json.loads(x) for x in lines[1:24] if json.loads(x)["event"] != "checkpoint"]
        for i, entry in enumerate(kept, start=1):
            entry["seq"] = i
        no_cp = variant("no_checkpoints", [lines[0]] + [json.dumps(e) for e in kept])
        _rechain_file(no_cp, h.ledger_id, len(kept), lambda e: None)
        checker.check("rechained_without_checkpoints", no_cp)
        checker.check("cut_mid_run", variant("cut", lines[: 1 + 22]))
        checker.check("cut_at_checkpoint", variant("cut_cp", lines[: 1 + 20]))
        checker.check("swapped_lines", variant("swap", lines[:5] + [lines[6], lines[5]] + lines[7:]))
        checker.check("dropped_line", variant("drop", lines[:8] + lines[9:]))
        header = json.loads(lines[0]) | {"first_seq": 2}
        checker.check("header_first_seq", variant("header", [json.dumps(header)] + lines[1:]))
        assert [] == checker.disagreements
        assert {
            "clean": (True, None),
            "rechained_prefix": (False, 7),
            "rechained_without_checkpoints": (False, 2),
            "cut_mid_run": (False, 22),
            "cut_at_checkpoint": (True, None),
            "swapped_lines": (False, 5),
            "dropped_line": (False, 8),
            "header_first_seq": (False, 1),
        } == checker.verdicts


class TestWindows:
    """An exported window verifies with only the public key, and only with its coverage."""

    def _times(self, h: Harness, *seqs: int) -> list[datetime]:
        return [parse_time(next(iter(h.ledger.iter_entries(from_seq=s, to_seq=s))).time) for s in seqs]

    def test_window_with_compact_coverage(
        self, harness_factory: Callable[[], Harness], checker: Checker, tmp_path: Path
    ) -> None:
        h = harness_factory()
        h.build(rounds=6)
        since, until = self._times(h, 8, 23)
        path = _export(h, tmp_path / "window.jsonl", since, until)
        lines = path.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        stripped = tmp_path / "stripped.jsonl"
        stripped.write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
        assert ("checkpoint", 8, 22, 25) == (
            header["coverage"],
            header["first_seq"],
            header["last_seq"],
            json.loads(lines[-1])["seq"],
        )
        assert (True, None) == checker.check("window", path)
        assert (False, 22) == checker.check("window_without_coverage", stripped)
        with open(path, encoding="utf-8") as stream:
            result = verify_export(stream, VerifyPolicy(keys=checker.keys))
        assert ((8, 22), 0) == (result.window, result.unsigned_tail)
        assert [] == checker.disagreements

    def test_window_ending_at_checkpoint_and_forged_window(
        self, harness_factory: Callable[[], Harness], checker: Checker, tmp_path: Path
    ) -> None:
        h = harness_factory()
        h.build(rounds=4)
        since, until = self._times(h, 6, 16)
        path = _export(h, tmp_path / "window.jsonl", since, until)
        assert "self" == json.loads(path.read_text().splitlines()[0])["coverage"]
        assert (True, None) == checker.check("window_self", path)
        lines = path.read_text().splitlines()
        entry = json.loads(lines[3])
        entry["fields"]["count"] = 99
        forged = tmp_path / "forged.jsonl"
        forged.write_text("\n".join(lines[:3] + [json.dumps(entry)] + lines[4:]) + "\n")
        assert (False, 8) == checker.check("window_forged", forged)
        assert [] == checker.disagreements

    def test_window_with_entries_coverage_across_a_rotation(
        self, harness_factory: Callable[[], Harness], signer: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        new = Signer(load_private_key(generate_key_pair()[0]))
        h = harness_factory()
        h.build(rounds=2)
        h.ledger.append(RunStarted(run_start=datetime.now().astimezone(), cutoffs={}), run_id="r-1")
        h.ledger.rotate_key(signer, new)
        since, until = self._times(h, 1, 12)
        path = _export(h, tmp_path / "window.jsonl", since, until)
        checker = Checker(tmp_path, [signer], capsys)
        assert "entries" == json.loads(path.read_text().splitlines()[0])["coverage"]
        assert (True, None) == checker.check("window_entries", path)
        assert [] == checker.disagreements


class TestKeysAgreement:
    """Retired keys and unvouched rotations: both verifiers fail at the same entry."""

    def test_retired_key_and_rotation_without_old_key(
        self, harness_factory: Callable[[], Harness], signer: Signer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        new = Signer(load_private_key(generate_key_pair()[0]))
        old_only = Checker(tmp_path, [signer], capsys)
        h = harness_factory()
        h.build(rounds=2)
        h.ledger.rotate_key(signer, new)
        append_forged(
            h, "config_loaded", {"categories": [], "config_sha256": "b" * 64, "holds": [], "holds_sha256": None}
        )
        forged_checkpoint(h, signer)
        assert (False, 14) == old_only.check("retired", _export(h, tmp_path / "retired.jsonl"))
        g = harness_factory()
        g.build(rounds=1)
        g.ledger.rotate_key(None, new)
        assert (False, 6) == old_only.check("unvouched", _export(g, tmp_path / "unvouched.jsonl"))
        both = Checker(tmp_path, [signer, new], capsys)
        assert (True, None) == both.check("vouched_by_auditor", _export(g, tmp_path / "vouched.jsonl"))
        assert [] == old_only.disagreements + both.disagreements


class TestStandalone:
    """The script is standalone: no retentiond import, runs as a program, exit codes 0 / 65 / 2."""

    def test_imports_only_stdlib_and_cryptography(self) -> None:
        tree = ast.parse(TOOL.read_text(encoding="utf-8"))
        roots = {
            (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
            for n in ast.walk(tree)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for a in (n.names if isinstance(n, ast.Import) else [n])
            if not isinstance(n, ast.ImportFrom) or n.module
        }
        assert set() == roots - set(sys.stdlib_module_names) - {"cryptography"}
        assert len(TOOL.read_text(encoding="utf-8").splitlines()) < 400

    def test_runs_as_a_program(self, harness_factory: Callable[[], Harness], signer: Signer, tmp_path: Path) -> None:
        h = harness_factory()
        h.build(rounds=2)
        path = _export(h, tmp_path / "export.jsonl")
        pub = _pem(signer, tmp_path / "k.pub.pem")
        ok = subprocess.run(
            [sys.executable, "-I", str(TOOL), str(path), "--pubkey", str(pub)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        bad_key = subprocess.run(
            [sys.executable, "-I", str(TOOL), str(path), "--pubkey", "/nonexistent"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        with h.raw() as conn:
            conn.execute(sa.update(entries_table).where(entries_table.c.seq == 3).values(category="other"))
        bad = _export(h, tmp_path / "bad.jsonl")
        failed = subprocess.run(
            [sys.executable, "-I", str(TOOL), str(bad), "--pubkey", str(pub)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert (0, 2, 65) == (ok.returncode, bad_key.returncode, failed.returncode), ok.stdout + ok.stderr
        assert ok.stdout.startswith("OK ledger=retentiond head_seq=10")
        assert failed.stdout.startswith("FAILED seq 3: modified")
