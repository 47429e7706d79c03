"""``holds add / extend / edit / lift / check / list``: edits keep the file, invalid edits write nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from retentiond.actions import holds_change
from retentiond.actions.holds_change import HoldEdit, apply_change
from retentiond.config.loader import load_config, load_holds
from tests.cli.conftest import RunCli

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_HOLDS = ROOT / "config" / "holds.toml"
LIT = '[[hold]]\nid = "LIT-2026-014"'


def config_text(holds_file: str, *, approval: bool = False) -> str:
    categories = ""
    for name, subject in (
        ("support_communications", True),
        ("account_contact", True),
        ("billing_records", True),
        ("tax_identifiers", False),
    ):
        categories += f"""
[categories.{name}]
retain = "30d"
action = "delete"
  [[categories.{name}.sql]]
  store = "app"
  table = "{name}"
  key = ["id"]
  age_column = "closed_at"
"""
        if subject:
            categories += '  subject_column = "account_id"\n'
    return f"""[daemon]
holds_file = "{holds_file}"
state_dir = "state"
hold_release_requires_approval = {"true" if approval else "false"}

[stores.app]
kind = "sql"
url = "sqlite:///app.db"
{categories}"""


@pytest.fixture
def legal(tmp_path: Path) -> Path:
    """A config folder with the shipped holds file (comments, template) and no approval required."""
    (tmp_path / "holds.toml").write_bytes(SHIPPED_HOLDS.read_bytes())
    (tmp_path / "retention.toml").write_text(config_text("holds.toml"), encoding="utf-8")
    return tmp_path


def holds_text(folder: Path) -> str:
    return (folder / "holds.toml").read_text(encoding="utf-8")


def lit_block_bounds(text: str) -> tuple[int, int]:
    """Return where the LIT-2026-014 block starts and where its last key line ends."""
    start = text.index(LIT)
    return start, text.index("\n\n", start)


def holds_of(folder: Path) -> dict[str, Any]:
    loaded = load_config(folder / "retention.toml")
    return {h.id: h for h in load_holds(loaded.holds_path, loaded.settings.categories).holds}


class TestAdd:
    """holds add appends a validated block; the rest of the file stays byte for byte."""

    def test_add_appends_and_keeps_every_byte(self, legal: Path, run_cli: RunCli) -> None:
        """The old content is a prefix of the new file; the new hold validates with every field."""
        before = holds_text(legal)
        result = run_cli(
            "-c", legal / "retention.toml", "holds", "add", "--id", "REG-1", "--kind", "regulatory",
            "--reason", "DPA inquiry", "--reference", "DPA 77", "--placed-by", "a.smith",
            "--category", "support_communications", "--subject", "acct_1", "--subject", "acct_2",
            "--expires", "2027-03-31", "--matter", "dpa-77",
        )  # fmt: skip
        after = holds_text(legal)
        assert 0 == result.code, result.output
        assert after.startswith(before)
        hold = holds_of(legal)["REG-1"]
        assert ("regulatory", "dpa-77", ["acct_1", "acct_2"], "a.smith") == (
            hold.kind,
            hold.matter,
            hold.subjects,
            hold.placed_by,
        )
        assert "added hold REG-1" in result.stdout

    @pytest.mark.parametrize(
        "bad",
        [
            ["--category", "suport_communications"],
            ["--category", "support_communications", "--expires", "2020-01-01", "--placed-at", "2026-01-01"],
            ["--category", "support_communications", "--keep-younger-than", "6m"],
        ],
    )
    def test_invalid_add_writes_nothing(self, legal: Path, run_cli: RunCli, bad: list[str]) -> None:
        """An unknown category, an end before the start, a bare 'm': exit 78, the file untouched."""
        path = legal / "holds.toml"
        before = (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
        result = run_cli(
            "-c", legal / "retention.toml", "holds", "add", "--id", "X-1", "--kind", "legal", "--reason", "r", *bad
        )
        assert 78 == result.code, result.output
        assert before == (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns)
        assert [] == [p.name for p in legal.iterdir() if p.name.endswith(".tmp")]

    def test_duplicate_id_is_refused(self, legal: Path, run_cli: RunCli) -> None:
        """An id that exists already: exit 78 naming it."""
        result = run_cli(
            "-c", legal / "retention.toml", "holds", "add", "--id", "TAX-US-7Y", "--kind", "tax", "--reason", "r",
            "--category", "*",
        )  # fmt: skip
        assert (78, True) == (result.code, "exists already" in result.stderr)

    def test_add_to_a_folder_by_matter(self, tmp_path: Path, run_cli: RunCli) -> None:
        """With a holds folder, a hold of matter M goes to M.toml (created 0640), found by the daemon's reader."""
        (tmp_path / "holds").mkdir()
        (tmp_path / "retention.toml").write_text(config_text("holds"), encoding="utf-8")
        args = ["--kind", "legal", "--reason", "r", "--category", "*", "--matter", "acme-v-example"]
        first = run_cli("-c", tmp_path / "retention.toml", "holds", "add", "--id", "A-1", *args)
        second = run_cli("-c", tmp_path / "retention.toml", "holds", "add", "--id", "A-2", *args)
        created = tmp_path / "holds" / "acme-v-example.toml"
        assert (0, 0) == (first.code, second.code), first.output + second.output
        assert (0o640, ["A-1", "A-2"]) == (created.stat().st_mode & 0o777, sorted(holds_of(tmp_path)))


class TestEdit:
    """holds edit / extend change one block in place."""

    def test_remove_subject_keeps_everything_else(self, legal: Path, run_cli: RunCli) -> None:
        """Only the edited hold's lines change; comments and the other holds are byte for byte the same."""
        before = holds_text(legal)
        start, end = lit_block_bounds(before)
        result = run_cli(
            "-c", legal / "retention.toml", "holds", "edit", "LIT-2026-014", "--remove-subject", "acct_1042"
        )
        after = holds_text(legal)
        assert 0 == result.code, result.output
        assert after.startswith(before[:start]) and after.endswith(before[end:])
        hold = holds_of(legal)["LIT-2026-014"]
        assert (["acct_2210"], hold.changed_by is not None) == (hold.subjects, True)
        assert "releases protection (subjects)" in result.stdout

    def test_new_keys_go_before_the_next_blocks_comments(self, legal: Path, run_cli: RunCli) -> None:
        """A key added to the first hold lands after its last key, not under the next block's comment."""
        before = holds_text(legal)
        result = run_cli("-c", legal / "retention.toml", "holds", "edit", "TAX-US-7Y", "--matter", "fin-rec")
        after = holds_text(legal)
        assert 0 == result.code, result.output
        floor = 'keep_younger_than = "7y"\n'
        assert floor + 'matter = "fin-rec"\nchanged_by = ' in after
        comment = before.index("# Payment tokens")
        assert after.endswith(before[comment:])

    def test_extend_moves_the_end(self, legal: Path, run_cli: RunCli) -> None:
        """extend to a later day works; to an earlier day it is a usage error and writes nothing."""
        config = legal / "retention.toml"
        later = run_cli("-c", config, "holds", "extend", "LIT-2026-014", "--expires", "2028-06-30")
        mid = holds_text(legal)
        earlier = run_cli("-c", config, "holds", "extend", "LIT-2026-014", "--expires", "2027-01-31")
        assert (0, 2) == (later.code, earlier.code), later.output + earlier.output
        assert mid == holds_text(legal)
        assert "2028-07-01" == holds_of(legal)["LIT-2026-014"].expires_at.date().isoformat()

    def test_mode_is_kept(self, legal: Path, run_cli: RunCli) -> None:
        """The file keeps its permission bits (and inode-independent content) across the atomic replace."""
        os.chmod(legal / "holds.toml", 0o604)
        result = run_cli("-c", legal / "retention.toml", "holds", "edit", "TAX-US-7Y", "--reference", "FIN-REC-004")
        assert (0, 0o604) == (result.code, (legal / "holds.toml").stat().st_mode & 0o777)

    def test_unknown_hold(self, legal: Path, run_cli: RunCli) -> None:
        """Editing a hold that does not exist exits 78."""
        result = run_cli("-c", legal / "retention.toml", "holds", "lift", "NOPE")
        assert (78, True) == (result.code, "no such hold" in result.stderr)


class TestDualControl:
    """With hold_release_requires_approval, the tools refuse what the daemon would refuse."""

    @pytest.fixture
    def strict(self, legal: Path) -> Path:
        (legal / "retention.toml").write_text(config_text("holds.toml", approval=True), encoding="utf-8")
        return legal

    @pytest.mark.parametrize(
        "args",
        [
            ["lift", "LIT-2026-014"],
            ["edit", "LIT-2026-014", "--remove-subject", "acct_1042"],
            ["edit", "LIT-2026-014", "--remove-category", "account_contact"],
            ["lift", "LIT-2026-014", "--approved-by", "ME", "--by", "me"],
        ],
    )
    def test_unapproved_release_writes_nothing(self, strict: Path, run_cli: RunCli, args: list[str]) -> None:
        """Lifting or narrowing a legal hold without another approver: exit 78, the file untouched."""
        before = holds_text(strict)
        result = run_cli("-c", strict / "retention.toml", "holds", *args)
        assert (78, before) == (result.code, holds_text(strict))

    def test_approved_lift_records_both(self, strict: Path, run_cli: RunCli) -> None:
        """The lifted block records who lifted and who approved."""
        result = run_cli(
            "-c", strict / "retention.toml", "holds", "lift", "LIT-2026-014", "--by", "j.doe", "--approved-by", "gc"
        )
        hold = holds_of(strict)["LIT-2026-014"]
        assert (0, "j.doe", "gc", True) == (result.code, hold.lifted_by, hold.lift_approved_by, hold.lifted)

    def test_tax_holds_need_no_approval(self, strict: Path, run_cli: RunCli) -> None:
        """Dual control covers legal holds only."""
        result = run_cli("-c", strict / "retention.toml", "holds", "lift", "TAX-US-7Y")
        assert 0 == result.code, result.output


class TestListAndCheck:
    """holds list after a lift; holds check warnings."""

    def test_grace_end_does_not_move_between_calls(self, legal: Path, run_cli: RunCli) -> None:
        """Before any run records the lift, two calls a second apart show the same grace end."""
        config = legal / "retention.toml"
        assert 0 == run_cli("-c", config, "holds", "lift", "TAX-US-7Y").code

        def grace_end() -> tuple[str, bool]:
            result = run_cli("-c", config, "--format", "json", "holds", "list")
            view = next(h for h in json.loads(result.stdout)["holds"] if h["id"] == "TAX-US-7Y")
            return view["protects_until"], view["pending"]

        first = grace_end()
        time.sleep(1.1)
        assert first == grace_end()
        assert first[1] is True

    def test_list_by_matter(self, legal: Path, run_cli: RunCli) -> None:
        """--matter keeps the holds of that matter only."""
        config = legal / "retention.toml"
        run_cli("-c", config, "holds", "edit", "LIT-2026-014", "--matter", "acme")
        result = run_cli("-c", config, "--format", "json", "holds", "list", "--matter", "acme")
        assert ["LIT-2026-014"] == [h["id"] for h in json.loads(result.stdout)["holds"]]

    def test_check_warns(self, legal: Path, run_cli: RunCli) -> None:
        """A subject with a trailing space and a subject hold on a table without subject column are flagged."""
        config = legal / "retention.toml"
        run_cli(
            "-c",
            config,
            "holds",
            "edit",
            "LIT-2026-014",
            "--add-subject",
            "acct_3 ",
            "--add-category",
            "tax_identifiers",
        )
        result = run_cli("-c", config, "--format", "json", "holds", "check")
        warnings = json.loads(result.stdout)["warnings"]
        assert 0 == result.code
        assert any("subject 3 of 3 has a leading or trailing space" in w for w in warnings)
        assert any("tax_identifiers.sql[0]" in w and "no subject_column" in w for w in warnings)
        assert not any("acct_3" in w for w in warnings)  # subject ids are not echoed

    def test_check_invalid_is_78(self, legal: Path, run_cli: RunCli) -> None:
        """An invalid holds file: exit 78 with the line."""
        (legal / "holds.toml").write_text('[[hold]]\nid = "A"\n', encoding="utf-8")
        result = run_cli("-c", legal / "retention.toml", "holds", "check")
        assert (78, True) == (result.code, "holds.toml:" in result.stderr)


class TestConcurrentEdits:
    """Two writers never lose each other's change."""

    def test_two_processes(self, legal: Path) -> None:
        """Two processes adding five holds each at the same time: all ten are in the file."""
        script = (
            "import sys\n"
            "from retentiond.cli.main import main\n"
            "for i in range(5):\n"
            "    try:\n"
            "        main(['-c', sys.argv[1], 'holds', 'add', '--id', f'{sys.argv[2]}-{i}', '--kind', 'legal',"
            " '--reason', 'r', '--category', '*'])\n"
            "    except SystemExit as exc:\n"
            "        assert exc.code == 0, exc.code\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            subprocess.Popen([sys.executable, "-c", script, str(legal / "retention.toml"), name], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for name in ("P", "Q")
        ]  # fmt: skip
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [0, 0] == [p.returncode for p in procs], errors
        assert {f"{n}-{i}" for n in "PQ" for i in range(5)} <= set(holds_of(legal))

    def test_write_between_read_and_replace_is_kept(self, legal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An editor that ignores the lock writes after the plan: the edit is planned again on its file."""
        loaded = load_config(legal / "retention.toml")
        real_plan = holds_change.plan_change
        calls: list[int] = []

        def plan_then_hand_edit(*args: Any, **kwargs: Any) -> holds_change.HoldChangePlan:
            plan = real_plan(*args, **kwargs)
            if not calls:
                path = legal / "holds.toml"
                path.write_text(path.read_text(encoding="utf-8") + "\n# added by hand meanwhile\n", encoding="utf-8")
            calls.append(1)
            return plan

        monkeypatch.setattr(holds_change, "plan_change", plan_then_hand_edit)
        edit = HoldEdit("edit", "TAX-US-7Y", actor="me", fields={"reference": "FIN-REC-009"})
        apply_change(loaded, edit, __import__("datetime").datetime.now(__import__("datetime").UTC))
        text = holds_text(legal)
        assert (2, True) == (len(calls), "# added by hand meanwhile" in text)
        assert "FIN-REC-009" == holds_of(legal)["TAX-US-7Y"].reference
