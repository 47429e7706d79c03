"""Pydantic models of Legal's holds file (SPEC §3, "Holds").

Dates are read protectively: ``placed_at = 2026-10-01`` starts at 00:00 UTC that day and
``expires_at = 2027-12-31`` protects through the whole of that day (until 2028-01-01 00:00 UTC).
A local date-time without an offset is refused: Legal must say which zone they meant.

Besides what a hold covers, a hold records who changed it: ``changed_by`` / ``changed_at`` /
``change_approved_by`` for its last change, ``lifted_by`` / ``lifted_at`` / ``lift_approved_by``
once it is lifted (a lifted hold stays in the file as a record and protects only during the
release grace). An approver must be someone else than the person who made the change.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, StrictStr, field_validator, model_validator

from retentiond.config.models import StrictModel
from retentiond.config.types import HoldId, Label, Retention, check_name

HOLD_KINDS = ("legal", "tax", "regulatory", "investigation")
#: Fields that say who did what; they change no protection (see policy.hold_changes).
RECORD_FIELDS = (
    "changed_by",
    "changed_at",
    "change_approved_by",
    "lifted_by",
    "lifted_at",
    "lift_approved_by",
)


def _start_instant(value: object) -> datetime:
    return _to_instant(value, end_of_day=False)


def _end_instant(value: object) -> datetime:
    return _to_instant(value, end_of_day=True)


def _to_instant(value: object, *, end_of_day: bool) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a date-time needs an offset (2027-12-31T17:00:00Z) or write a plain date (2027-12-31)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        start = datetime.combine(value, time(0), tzinfo=UTC)
        return start + timedelta(days=1) if end_of_day else start
    raise ValueError("must be a TOML date (2026-10-01) or an offset date-time (2026-10-01T09:00:00Z)")


StartInstant = Annotated[datetime, BeforeValidator(_start_instant)]
EndInstant = Annotated[datetime, BeforeValidator(_end_instant)]
#: Who did something to a hold: a short label like ``placed_by`` (recorded, so never free text).
Person = Label


def same_person(a: str | None, b: str | None) -> bool:
    """Return True when two actor names denote the same person (case and surrounding spaces ignored)."""
    return a is not None and b is not None and a.strip().casefold() == b.strip().casefold()


class Hold(StrictModel):
    """``[[hold]]``: records that must not be deleted or anonymized while the hold is active."""

    id: HoldId = Field(description="Unique id, e.g. 'LIT-2026-014'.")
    kind: Literal["legal", "tax", "regulatory", "investigation"] = Field(description="Why the records are kept.")
    reason: StrictStr = Field(min_length=1, description="Why, in words an auditor understands.")
    reference: Label | None = Field(
        None, description="Matter number, ticket or statute, as a short label ('Matter 2026-014'); audited."
    )
    placed_by: Label = Field(description="Who placed the hold, as a short label ('j.doe@legal'); audited.")
    placed_at: StartInstant = Field(description="Date (or offset date-time) the hold starts.")
    expires_at: EndInstant | None = Field(None, description="Last day of the hold (inclusive); absent = until removed.")
    categories: list[Annotated[str, Field(min_length=1)]] = Field(
        min_length=1, description='Category names, or ["*"] for all.'
    )
    subjects: list[Annotated[StrictStr, Field(min_length=1, max_length=256)]] | None = Field(
        None, min_length=1, description="Subject ids; absent = every subject of those categories."
    )
    keep_younger_than: Retention | None = Field(
        None, description="Only records younger than this are held (tax floors)."
    )
    matter: HoldId | None = Field(
        None, description="The matter the hold belongs to (letters, digits, . _ -); groups holds in reports."
    )
    changed_by: Person | None = Field(None, description="Who made the last change to the hold.")
    changed_at: StartInstant | None = Field(None, description="When the last change was made.")
    change_approved_by: Person | None = Field(
        None, description="Who approved the last change (dual control; not the person who made it)."
    )
    lifted_by: Person | None = Field(
        None, description="Who lifted the hold; a lifted hold protects nothing after the grace."
    )
    lifted_at: StartInstant | None = Field(None, description="When the hold was lifted.")
    lift_approved_by: Person | None = Field(
        None, description="Who approved the lift (dual control; not the person who lifted)."
    )

    @field_validator("reason", "changed_by", "change_approved_by", "lifted_by", "lift_approved_by")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("categories")
    @classmethod
    def _category_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if name != "*":
                check_name(name)
        if "*" in value and len(value) > 1:
            raise ValueError("'*' already covers every category; list it alone")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> Hold:
        if self.expires_at is not None and self.expires_at <= self.placed_at:
            raise ValueError("expires_at is before placed_at")
        return self

    @model_validator(mode="after")
    def _records_complete(self) -> Hold:
        pairs = (("changed_by", "changed_at"), ("lifted_by", "lifted_at"))
        for who, when in pairs:
            if (getattr(self, who) is None) != (getattr(self, when) is None):
                raise ValueError(f"{who} and {when} go together: write both or neither")
        approvals = (("change_approved_by", "changed_by"), ("lift_approved_by", "lifted_by"))
        for approver, actor in approvals:
            if getattr(self, approver) is not None and getattr(self, actor) is None:
                raise ValueError(f"{approver} needs {actor}: an approval approves someone's change")
            if same_person(getattr(self, approver), getattr(self, actor)):
                raise ValueError(f"{approver} must be someone else than {actor} (dual control)")
        return self

    @property
    def lifted(self) -> bool:
        """Return True when the hold has been lifted (it stays in the file as a record)."""
        return self.lifted_at is not None

    def covers_category(self, category: str) -> bool:
        """Return True when the hold names ``category`` or ``"*"``."""
        return "*" in self.categories or category in self.categories

    def protection(self) -> dict[str, object]:
        """Return the fields that decide what the hold protects (not who recorded what)."""
        return {
            "kind": self.kind,
            "placed_at": self.placed_at,
            "expires_at": self.expires_at,
            "categories": sorted(self.categories),
            "subjects": None if self.subjects is None else sorted(set(self.subjects)),
            "keep_younger_than": self.keep_younger_than,
            "lifted": self.lifted,
        }


class HoldsFile(StrictModel):
    """One holds file: an array of ``[[hold]]`` tables."""

    hold: list[Hold] = Field(default_factory=list, description="The holds.")
