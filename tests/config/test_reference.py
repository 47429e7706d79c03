"""docs/configuration.md is generated from the models and cannot drift from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from retentiond.config import reference
from retentiond.config.holds import Hold
from retentiond.config.models import (
    ANONYMIZE_STRATEGIES,
    AnchorSettings,
    AuditSettings,
    Category,
    DaemonSettings,
    HistoryTable,
    S3Store,
    S3Target,
    Settings,
    SqlStore,
    SqlTarget,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
MODELS: list[type[BaseModel]] = [
    Settings,
    DaemonSettings,
    AuditSettings,
    AnchorSettings,
    SqlStore,
    S3Store,
    Category,
    SqlTarget,
    HistoryTable,
    S3Target,
    Hold,
]


def section_text(model: type[BaseModel]) -> str:
    """Return the generated section of ``model``."""
    (section,) = [s for s in reference.SECTIONS if s.model is model]
    return reference._section(section)


class TestReference:
    """The generated reference covers every key and matches the committed doc."""

    def test_doc_is_up_to_date(self) -> None:
        """The part of docs/configuration.md between the markers equals what the models generate."""
        assert reference.generate() == reference.generated_part(DOC.read_text(encoding="utf-8")), (
            "run: python -m retentiond.config.reference --write docs/configuration.md"
        )

    def test_every_model_has_a_section(self) -> None:
        """Each model of the configuration and holds files has exactly one section."""
        assert MODELS == [s.model for s in reference.SECTIONS]

    @pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
    def test_every_field_documented(self, model: type[BaseModel]) -> None:
        """Every field appears as a row of its model's section, with a description."""
        text = section_text(model)
        missing = [name for name in model.model_fields if f"| `{name}` |" not in text]
        undescribed = [name for name, info in model.model_fields.items() if not (info.description or "").strip()]
        assert ([], []) == (missing, undescribed)

    @pytest.mark.parametrize(
        ("model", "key", "type_", "default"),
        [
            (DaemonSettings, "batch_size", "integer (≥ 1, ≤ 100000)", "`5000`"),
            (DaemonSettings, "hold_release_grace", "string: retention period", '`"7d"`'),
            (DaemonSettings, "pause_between_batches", "string: duration", '`"0s"`'),
            (Category, "retain", "string: retention period", "**required**"),
            (Category, "action", '`"delete"` \\| `"anonymize"`', "**required**"),
            (Category, "sql", "array of tables `[[categories.NAME.sql]]`", "empty"),
            (SqlTarget, "key", "array of string: SQL identifier (at least 1)", "**required**"),
            (SqlTarget, "history", "inline table `history = { ... }`", "unset"),
            (S3Target, "whole_bucket", "boolean", "`false`"),
            (Hold, "expires_at", "date or offset date-time", "unset"),
            (AuditSettings, "anchor", "table `[audit.anchor]`", "unset"),
        ],
    )
    def test_types_and_defaults(self, model: type[BaseModel], key: str, type_: str, default: str) -> None:
        """Types are given in TOML terms and defaults as TOML values."""
        rows = {k: (t, d) for k, t, d, _ in reference.field_rows(model)}
        assert (type_, default) == rows[f"`{key}`"]

    def test_strategies_documented(self) -> None:
        """Every anonymize strategy the models accept has an explanation, and no other."""
        assert sorted(ANONYMIZE_STRATEGIES) == sorted(reference.STRATEGIES)

    def test_splice_replaces_only_generated_part(self) -> None:
        """--write keeps the hand-written text around the markers."""
        doc = f"intro\n{reference.BEGIN}\nold\n{reference.END}\noutro\n"
        assert f"intro\n{reference.BEGIN}\nnew\n{reference.END}\noutro\n" == reference.splice(doc, "new\n")

    def test_check_reports_drift(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """--check exits 1 on an outdated doc and 0 after --write."""
        path = tmp_path / "c.md"
        path.write_text(f"x\n{reference.BEGIN}\nstale\n{reference.END}\n", encoding="utf-8")
        before = reference.main(["--check", str(path)])
        reference.main(["--write", str(path)])
        capsys.readouterr()
        assert (1, 0) == (before, reference.main(["--check", str(path)]))
