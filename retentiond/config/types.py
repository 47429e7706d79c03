"""Validated scalar types shared by the configuration and holds models.

Each type is an ``Annotated`` alias whose validator raises ``ValueError`` with a message that
says what is expected; the loader adds the dotted path and the line.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

from retentiond.config.cron import validate_cron
from retentiond.config.durations import RetentionPeriod, format_operational, parse_operational

# ASCII only on purpose: fullwidth or other look-alike letters must never reach SQL text.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}", re.ASCII)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,62}", re.ASCII)
_HOLD_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,254}", re.ASCII)
# A short label such as "j.doe@legal" or "Matter 2026-014": words of ASCII letters, digits and
# . _ - @ / : # + separated by single spaces; no punctuation that would let a sentence through.
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@/:#+-]*(?: [A-Za-z0-9._@/:#+-]+){0,5}", re.ASCII)
LABEL_MAX = 100


def _check_identifier(value: str) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(
            f"invalid SQL identifier {value!r}: use 1-63 ASCII letters, digits and underscores, "
            "not starting with a digit"
        )
    return value


def _check_table_name(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    parts = value.split(".")
    if len(parts) > 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ValueError(
            f"invalid table name {value!r}: use an SQL identifier (ASCII letters, digits, "
            "underscores; at most 63) with an optional 'schema.' prefix"
        )
    return value


def check_name(value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"invalid name {value!r}: use 1-63 ASCII letters, digits, '_' or '-', starting with a letter")
    return value


def _check_hold_id(value: str) -> str:
    if not isinstance(value, str) or not _HOLD_ID.fullmatch(value):
        raise ValueError(f"invalid hold id {value!r}: use ASCII letters, digits and . _ - (at most 128)")
    return value


def check_label(value: str) -> str:
    """Return ``value`` when it is a label (who placed a hold, a matter or ticket reference).

    Raises:
        ValueError: not a label: at most 100 characters, at most six words of ASCII letters,
            digits and ``. _ - @ / : # +``, separated by single spaces.
    """
    if not isinstance(value, str) or len(value) > LABEL_MAX or not _LABEL.fullmatch(value):
        raise ValueError(
            f"invalid label {value!r}: at most {LABEL_MAX} characters, up to six words of ASCII letters, "
            "digits and . _ - @ / : # + separated by single spaces (e.g. 'j.doe@legal', 'Matter 2026-014')"
        )
    return value


def _check_bucket(value: str) -> str:
    if not isinstance(value, str) or not _BUCKET.fullmatch(value) or ".." in value:
        raise ValueError(f"invalid S3 bucket name {value!r}")
    return value


def _check_env_name(value: str) -> str:
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ValueError(f"invalid environment variable name {value!r}")
    return value


def _check_credential_name(value: str) -> str:
    if not isinstance(value, str) or not _CREDENTIAL_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError(f"invalid credential name {value!r}: a file name without '/'")
    return value


def _check_timezone(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be an IANA time zone name such as 'UTC' or 'Europe/Berlin'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _parse_retention(value: object) -> RetentionPeriod:
    if isinstance(value, RetentionPeriod):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string such as '30d', '6w', '13mo' or '7y'")
    return RetentionPeriod.parse(value)


def _parse_operational(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a string such as '0s', '30s', '5m' or '1h'")
    return parse_operational(value)


def _positive(span: timedelta) -> timedelta:
    if span <= timedelta(0):
        raise ValueError("must be greater than zero")
    return span


Identifier = Annotated[str, AfterValidator(_check_identifier)]
TableName = Annotated[str, AfterValidator(_check_table_name)]
Name = Annotated[str, AfterValidator(check_name)]
HoldId = Annotated[str, AfterValidator(_check_hold_id)]
Label = Annotated[str, AfterValidator(check_label)]
BucketName = Annotated[str, AfterValidator(_check_bucket)]
EnvName = Annotated[str, AfterValidator(_check_env_name)]
CredentialName = Annotated[str, AfterValidator(_check_credential_name)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Cron = Annotated[str, AfterValidator(validate_cron)]
Retention = Annotated[
    RetentionPeriod,
    BeforeValidator(_parse_retention),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(d|w|mo|y)$"}),
]
Operational = Annotated[
    timedelta,
    BeforeValidator(_parse_operational),
    PlainSerializer(format_operational, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]+(s|m|h|d)$"}),
]
PositiveOperational = Annotated[Operational, AfterValidator(_positive)]
