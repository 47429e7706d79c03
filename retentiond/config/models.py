"""Pydantic models of ``retention.toml`` (SPEC §3).

The models check each value on its own; relations between sections (a target's store exists,
``retain`` is not below ``min_retention``, ...) are checked by ``retentiond.config.loader`` so
that one bad section never hides the errors of another. Field descriptions are the
configuration reference: ``docs/configuration.md`` is generated from them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator, model_validator

from retentiond.config.durations import RetentionPeriod
from retentiond.config.types import (
    BucketName,
    CredentialName,
    Cron,
    EnvName,
    Identifier,
    Name,
    Operational,
    PositiveOperational,
    Retention,
    TableName,
    TimeZoneName,
)

ANONYMIZE_STRATEGIES = ("null", "redact", "hmac", "truncate_ip", "year", "month", "fixed:<value>")


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and type coercion are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _exactly_one_source(model: BaseModel, field: str, *, required: bool) -> None:
    """Raise when more than one (or, if required, none) of the ways to give a secret is set.

    The ways are ``field``, ``field_env``, ``field_credential`` and ``field_file``.
    """
    names = [
        n for n in (field, f"{field}_env", f"{field}_credential", f"{field}_file") if n in type(model).model_fields
    ]
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(given)}")
    if required and not given:
        raise ValueError(f"one of {', '.join(names)} is required")


def _check_inline_url(url: str | None) -> str | None:
    if url is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("is not a valid database URL (driver://user@host/db)") from None
    if parsed.password is not None:
        raise ValueError(
            "carries a password; secrets never live in the config file: use url_env or url_credential instead"
        )
    return url


class DaemonSettings(StrictModel):
    """``[daemon]``: scheduling, batching and the safety limits shared by every category."""

    timezone: TimeZoneName = Field(
        "UTC", description="IANA zone for cron schedules only; cutoffs are always UTC instants."
    )
    schedule: Cron = Field("15 3 * * *", description="Default 5-field cron schedule of every category.")
    batch_size: StrictInt = Field(
        5000, ge=1, le=100_000, description="Rows or keys per batch (S3: at most 1,000 per request)."
    )
    pause_between_batches: Operational = Field(
        timedelta(0), description="Pause after each batch, to protect production load."
    )
    progress_log_interval: Operational = Field(
        timedelta(seconds=5),
        description=(
            "Without a terminal, a run logs one line per batch and target, at most one per this interval "
            "('0s': every batch)."
        ),
    )
    max_fraction_per_run: float = Field(
        0.25, gt=0, le=1, description="A run that would act on more than this fraction of a target stops before acting."
    )
    min_retention: Retention = Field(
        RetentionPeriod(1, "d"), description="Any category retaining less than this is a config error."
    )
    hold_release_grace: Retention = Field(
        RetentionPeriod(7, "d"),
        description=(
            "A hold that is lifted, removed from the holds file or narrowed (fewer subjects or categories, "
            "an earlier expires_at, a shorter keep_younger_than) keeps protecting what it protected for this long."
        ),
    )
    hold_release_requires_approval: StrictBool = Field(
        False,
        description=(
            "Dual control: lifting or narrowing a hold of kind 'legal' needs an approver other than the person "
            "who made the change (lift_approved_by / change_approved_by in the holds file); without it the "
            "daemon keeps the hold as it was and audits hold_release_refused."
        ),
    )
    holds_file: StrictStr = Field(
        "holds.toml", min_length=1, description="Legal's holds file or a directory of *.toml, relative to this file."
    )
    state_dir: StrictStr = Field(
        "/var/lib/retentiond",
        min_length=1,
        description="Where retentiond keeps its state (last seen holds, last success, locks).",
    )
    metrics_listen: StrictStr = Field(
        "127.0.0.1:9464", description="host:port for /metrics, /healthz, /readyz; empty disables."
    )
    misfire_grace_time: PositiveOperational = Field(
        timedelta(hours=6),
        description="How late a scheduled run may still start (APScheduler's 1 s default would drop runs).",
    )
    max_clock_skew: PositiveOperational = Field(
        timedelta(minutes=5), description="Refuse to run when a database clock differs from ours by more than this."
    )
    erasure_deadline: Retention = Field(
        RetentionPeriod(30, "d"),
        description="How long a queued erasure request may wait (the legal answer period); later it is overdue.",
    )
    erasure_max_records: StrictInt = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description=(
            "Blast-radius guard of one erasure request: a request that would act on more records (all "
            "categories together) stops before acting unless allowed once (`erase --allow-large`)."
        ),
    )

    @field_validator("metrics_listen")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"invalid listen address {value!r}: use host:port, e.g. '127.0.0.1:9464', or '' to disable"
            )
        return value


class AnchorSettings(StrictModel):
    """``[audit.anchor]``: copy each signed checkpoint to a WORM (Object Lock) bucket."""

    store: Name = Field(description="An S3 store of [stores].")
    bucket: BucketName = Field(description="Bucket created with Object Lock enabled.")
    prefix: StrictStr = Field("retentiond/", description="Key prefix of the checkpoint objects.")
    retain_days: StrictInt = Field(
        2557, ge=1, le=36_500, description="COMPLIANCE-mode retention of each checkpoint object, in days."
    )


class AuditSettings(StrictModel):
    """``[audit]``: where the tamper-evident ledger lives and which keys sign and key it."""

    ledger_id: Name = Field("retentiond", description="Names the ledger; part of its genesis hash.")
    url: StrictStr | None = Field(
        None, description="SQLAlchemy URL without a password; default: sqlite file audit.db in state_dir."
    )
    url_env: EnvName | None = Field(None, description="Environment variable holding the ledger URL.")
    url_credential: CredentialName | None = Field(None, description="systemd credential holding the ledger URL.")
    hmac_key_env: EnvName | None = Field(None, description="Environment variable holding the key of record refs.")
    hmac_key_credential: CredentialName | None = Field(
        None, description="systemd credential holding the key of record refs."
    )
    hmac_key_file: StrictStr | None = Field(None, description="File holding the key of record refs.")
    signing_key_env: EnvName | None = Field(
        None, description="Environment variable holding the Ed25519 private key (PEM)."
    )
    signing_key_credential: CredentialName | None = Field(
        None, description="systemd credential holding the Ed25519 private key (PEM)."
    )
    signing_key_file: StrictStr | None = Field(None, description="File holding the Ed25519 private key (PEM).")
    checkpoint_interval: PositiveOperational = Field(
        timedelta(hours=1), description="A signed checkpoint at least this often, even when idle."
    )
    anchor: AnchorSettings | None = Field(None, description="Optional WORM copy of each checkpoint.")

    @field_validator("url")
    @classmethod
    def _url_without_password(cls, value: str | None) -> str | None:
        return _check_inline_url(value)

    @model_validator(mode="after")
    def _one_source_each(self) -> AuditSettings:
        _exactly_one_source(self, "url", required=False)
        _exactly_one_source(self, "hmac_key", required=False)
        _exactly_one_source(self, "signing_key", required=False)
        return self


class SqlStore(StrictModel):
    """``[stores.NAME]`` with ``kind = "sql"``: a database reached through SQLAlchemy."""

    kind: Literal["sql"] = Field(description="Selects this kind of store: a SQL database.")
    url: StrictStr | None = Field(None, description="SQLAlchemy URL without a password.")
    url_env: EnvName | None = Field(None, description="Environment variable holding the URL.")
    url_credential: CredentialName | None = Field(None, description="systemd credential holding the URL.")
    lock_timeout: PositiveOperational = Field(timedelta(seconds=2), description="PostgreSQL lock_timeout per batch.")
    statement_timeout: PositiveOperational = Field(
        timedelta(seconds=60), description="PostgreSQL statement_timeout per batch."
    )
    retry_attempts: StrictInt = Field(
        5, ge=1, le=20, description="Tries of a batch that fails transiently (lock or statement timeout, deadlock)."
    )
    retry_wait: PositiveOperational = Field(
        timedelta(seconds=1), description="Wait before a batch's first retry; doubled at each retry, with jitter."
    )
    retry_max_wait: PositiveOperational = Field(
        timedelta(seconds=30), description="Longest wait between two tries of a batch."
    )

    @field_validator("url")
    @classmethod
    def _url_without_password(cls, value: str | None) -> str | None:
        return _check_inline_url(value)

    @model_validator(mode="after")
    def _one_source(self) -> SqlStore:
        _exactly_one_source(self, "url", required=True)
        return self


class S3Store(StrictModel):
    """``[stores.NAME]`` with ``kind = "s3"``: AWS S3 or an S3-compatible endpoint."""

    kind: Literal["s3"] = Field(description="Selects this kind of store: an S3 (or S3-compatible) object store.")
    region: StrictStr = Field("us-east-1", min_length=1, description="AWS region.")
    endpoint_url: StrictStr | None = Field(None, description="Endpoint of an S3-compatible store.")
    endpoint_url_env: EnvName | None = Field(None, description="Environment variable holding the endpoint URL.")
    profile: StrictStr | None = Field(
        None, description="AWS shared-config profile; default: boto3's standard credential chain."
    )
    max_workers: StrictInt = Field(4, ge=1, le=64, description="Threads listing and deleting concurrently.")
    verify_deletes: StrictBool = Field(
        False, description="After each request, list again to confirm the versions are gone."
    )

    @model_validator(mode="after")
    def _one_endpoint(self) -> S3Store:
        if self.endpoint_url is not None and self.endpoint_url_env is not None:
            raise ValueError("give only one of endpoint_url, endpoint_url_env")
        return self


Store = Annotated[SqlStore | S3Store, Field(discriminator="kind")]


class HistoryTable(StrictModel):
    """Prior versions of a record, kept in a separate table."""

    table: TableName = Field(description="History table, optionally schema-qualified.")
    key: list[Identifier] = Field(min_length=1, description="Primary key column(s) of the history table.")
    parent: list[Identifier] = Field(
        min_length=1, description="Column(s) referring to the record's key, in the key's order."
    )
    superseded_column: Identifier = Field(description="When the version was superseded (timestamptz).")


_STRATEGY = re.compile(r"null|redact|hmac|truncate_ip|year|month|fixed:.{0,200}", re.DOTALL)


def _check_strategy(value: str) -> str:
    if not _STRATEGY.fullmatch(value):
        raise ValueError(f"unknown anonymize strategy {value!r}: use one of {', '.join(ANONYMIZE_STRATEGIES)}")
    return value


class SqlTarget(StrictModel):
    """``[[categories.NAME.sql]]``: one table of a category."""

    store: Name = Field(description="A store of kind 'sql'.")
    table: TableName = Field(description="Table, optionally schema-qualified ('app.support_tickets').")
    key: list[Identifier] = Field(min_length=1, description="Primary key column(s).")
    age_column: Identifier = Field(
        description="Timestamp that starts the retention clock; NULL means not started (keep)."
    )
    age_timezone: TimeZoneName | None = Field(
        None, description="Zone of a column without time zone; required for such columns."
    )
    subject_column: Identifier | None = Field(None, description="Whose data the row is (holds by subject).")
    match: dict[Identifier, StrictStr | StrictInt | StrictBool] | None = Field(
        None, description="Equality filters, always bound as parameters."
    )
    history: HistoryTable | None = Field(None, description="Table of prior versions of these rows.")
    anonymize: dict[Identifier, StrictStr] | None = Field(
        None, description="Column → strategy, for action = 'anonymize'."
    )
    archive_schema: Identifier | None = Field(
        None,
        description="Range-partitioned tables: move a wholly expired partition to this schema instead of dropping it.",
    )

    @field_validator("anonymize")
    @classmethod
    def _strategies(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            if not value:
                raise ValueError("must name at least one column")
            for strategy in value.values():
                _check_strategy(strategy)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> SqlTarget:
        if len(set(self.key)) != len(self.key):
            raise ValueError("key names a column twice")
        if self.history is not None and len(self.history.parent) != len(self.key):
            raise ValueError("history.parent must have one column per key column")
        if self.anonymize:
            touched = sorted(set(self.anonymize) & (set(self.key) | {self.age_column}))
            if touched:
                raise ValueError(f"anonymize must not rewrite key or age columns: {', '.join(touched)}")
        if self.archive_schema is not None and self.anonymize:
            raise ValueError("archive_schema applies to deleting targets only (anonymize keeps its rows)")
        return self

    def label(self) -> str:
        """Return the target's name in plans and the ledger: ``store/table``."""
        return f"{self.store}/{self.table}"


_AGE_SOURCE = re.compile(r"last_modified|(tag|metadata):[A-Za-z0-9_.:-]{1,128}", re.ASCII)


class S3Target(StrictModel):
    """``[[categories.NAME.s3]]``: one bucket prefix of a category."""

    store: Name = Field(description="A store of kind 's3'.")
    bucket: BucketName = Field(description="Bucket name.")
    prefix: StrictStr = Field(
        "", max_length=1024, description="Key prefix; must be non-empty unless whole_bucket = true."
    )
    whole_bucket: StrictBool = Field(False, description="Allow an empty prefix: the category covers the whole bucket.")
    age: StrictStr = Field(
        "last_modified", description="'last_modified', 'tag:<name>' or 'metadata:<name>' holding an RFC 3339 time."
    )
    subject_pattern: StrictStr | None = Field(
        None, description="Regex with a named group 'subject' applied to the object key."
    )

    @field_validator("age")
    @classmethod
    def _age_source(cls, value: str) -> str:
        if not _AGE_SOURCE.fullmatch(value):
            raise ValueError(f"invalid age source {value!r}: use 'last_modified', 'tag:<name>' or 'metadata:<name>'")
        return value

    @field_validator("subject_pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if "subject" not in compiled.groupindex:
            raise ValueError("needs a named group 'subject', e.g. '^tickets/(?P<subject>[^/]+)/'")
        return value

    def label(self) -> str:
        """Return the target's name in plans and the ledger: ``store/bucket/prefix``."""
        return f"{self.store}/{self.bucket}/{self.prefix}"


class Category(StrictModel):
    """``[categories.NAME]``: one kind of personal information and its retention."""

    description: StrictStr = Field("", description="What the category holds, in the privacy notice's words.")
    retain: Retention = Field(description="Retention period: Nd, Nw, Nmo or Ny (calendar months/years in UTC).")
    action: Literal["delete", "anonymize"] = Field(description="What happens to an expired record.")
    schedule: Cron | None = Field(None, description="Overrides daemon.schedule for this category.")
    prior_versions: Retention | None = Field(
        None,
        description=(
            "Keep superseded versions this long after they were superseded; unset, the category's `retain` "
            "(docs/decision-rules.md)."
        ),
    )
    erasure: Literal["allow", "never"] = Field(
        "allow",
        description=(
            "Whether an erasure request (`retentiond erase`) acts on the category's records; 'never' keeps them "
            "whatever the request (records the law requires to keep, e.g. invoices), reported as kept by rule."
        ),
    )
    sql: list[SqlTarget] = Field(default_factory=list, description="SQL tables of the category.")
    s3: list[S3Target] = Field(default_factory=list, description="S3 prefixes of the category.")


class Settings(StrictModel):
    """The whole ``retention.toml``."""

    daemon: DaemonSettings = Field(default_factory=DaemonSettings, description="Scheduling and safety limits.")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="The audit ledger.")
    stores: dict[Name, Store] = Field(default_factory=dict, description="Named SQL databases and S3 endpoints.")
    categories: dict[Name, Category] = Field(default_factory=dict, description="Categories of personal information.")
