"""Bad-input corpus: every file here must make `retentiond config validate` exit 78, naming the bad path.

Config files (``*.toml``) start with ``# expect: <text>``; holds files (``holds/*.toml``) with
``# expect-holds: <text>`` and are validated through a small valid config whose ``holds_file``
points at them. ``<text>`` must appear in the output: a dotted path such as
``categories.support.sql[0].table``, or ``:LINE: TOML syntax error`` for files that do not parse.
Inputs that cannot carry a comment (non-UTF-8 bytes, an empty file) are in RAW below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from retentiond.cli.main import main

HERE = Path(__file__).parent
CONFIGS = sorted(HERE.glob("*.toml"))
HOLDS = sorted((HERE / "holds").glob("*.toml"))

VALID_CONFIG = """\
[daemon]
holds_file = "{holds}"

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
"""

# (name, is a holds file, bytes, text expected in the output)
RAW = [
    ("empty.toml", False, b"", "categories"),
    (
        "latin1.toml",
        False,
        b'[categories.support]\ndescription = "Kundenanfragen f\xfcr Z\xfcrich"\n',
        ":2: not valid UTF-8",
    ),
    ("nul.toml", False, b'[daemon]\nschedule = "15 3 * * *\x00"\n', ":2: TOML syntax error"),
    ("utf16.toml", False, "[daemon]\nbatch_size = 1\n".encode("utf-16"), "not valid UTF-8"),
    ("holds_latin1.toml", True, b'[[hold]]\nid = "LIT-1"\nreason = "Pr\xe9servation"\n', ":3: not valid UTF-8"),
    ("holds_empty_file_is_fine_but_bad_key.toml", True, b"holds = []\n", "holds: unknown key; did you mean 'hold'?"),
]


def expectation(path: Path) -> tuple[bool, str]:
    """Return (is a holds file, expected text) from the file's first line."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    tag, _, expected = first.partition(":")
    assert tag in ("# expect", "# expect-holds"), (
        f"{path.name}: first line must be '# expect: ...' or '# expect-holds: ...'"
    )
    return tag == "# expect-holds", expected.strip()


def validate(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run `retentiond config validate -c CONFIG` in-process; return the exit code and all output."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["config", "validate", "-c", str(config)])
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out + err


def config_for_holds(holds: Path, tmp_path: Path) -> Path:
    """Write a valid config whose holds_file is ``holds``."""
    config = tmp_path / "retention.toml"
    config.write_text(VALID_CONFIG.format(holds=holds.as_posix()), encoding="utf-8")
    return config


class TestCorpus:
    """Each bad input exits 78, names the offending path, and never shows a traceback."""

    def test_corpus_is_large(self) -> None:
        """The corpus keeps at least 36 files."""
        assert len(CONFIGS) + len(HOLDS) + len(RAW) >= 36

    def test_holds_corpus_files_are_tagged(self) -> None:
        """Files under holds/ are holds files, files here are config files."""
        tags = [expectation(p)[0] for p in CONFIGS] + [not expectation(p)[0] for p in HOLDS]
        assert [] == [p.name for p, holds in zip(CONFIGS + HOLDS, tags, strict=True) if holds]

    @pytest.mark.parametrize("path", CONFIGS + HOLDS, ids=lambda p: f"{p.parent.name}/{p.name}")
    def test_file(self, path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """`config validate` on a corpus file: exit 78, the expected path in the output, no traceback."""
        is_holds, expected = expectation(path)
        config = config_for_holds(path, tmp_path) if is_holds else path
        code, output = validate(config, capsys)
        assert (78, True, False) == (code, expected in output, "Traceback" in output), output

    @pytest.mark.parametrize(("name", "is_holds", "data", "expected"), RAW, ids=[r[0] for r in RAW])
    def test_raw(
        self, name: str, is_holds: bool, data: bytes, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Inputs written as bytes (no room for an expect comment): exit 78, expected text, no traceback."""
        path = tmp_path / name
        path.write_bytes(data)
        config = config_for_holds(path, tmp_path) if is_holds else path
        code, output = validate(config, capsys)
        assert (78, True, False) == (code, expected in output, "Traceback" in output), output
