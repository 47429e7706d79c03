"""Validated value types of ledger event fields: names, labels, digests, signatures, enums.

Each class checks its value on construction and raises ``TypeError`` (wrong type) or
``ValueError`` (wrong shape) with a message that never echoes the value.
"""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Annotated, TypeAlias

from retentiond.audit.refs import RecordRef
from retentiond.config.types import check_label

_NAME = re.compile(r"^(\*|[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199})$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_SIGNATURE = re.compile(r"^[0-9a-f]{128}$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
_HASH_LIST = re.compile(r"^(?:[0-9a-f]{64})*$")
_SQLSTATE = re.compile(r"^[0-9A-Z]{5}$")


class Name(str):
    """A configuration object name: category, store, hold id, table, bucket, prefix label.

    Conservative on purpose (letters, digits, ``_ . - /``, at most 200 characters, or ``*``)
    so that a record key or a sentence cannot pass for one.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Name:
        """Raises: TypeError if not a str; ValueError if it does not look like a name."""
        if isinstance(value, Name):
            return value
        if not isinstance(value, str):
            raise TypeError(f"a Name must be a str, not {type(value).__name__}")
        if not _NAME.match(value):
            raise ValueError("invalid name (letters, digits, _ . - / only, at most 200 characters)")
        return super().__new__(cls, value)


class Digest(str):
    """A SHA-256 digest as 64 lowercase hex characters."""

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        """Raises: TypeError if not a str; ValueError if not 64 lowercase hex characters."""
        if not isinstance(value, str):
            raise TypeError("a Digest must be a str of 64 lowercase hex characters")
        if not _DIGEST.match(value):
            raise ValueError("a Digest must be 64 lowercase hex characters")
        return super().__new__(cls, value)


class SqlState(str):
    """A SQLSTATE: five digits or upper-case letters (``23503``, ``P0001``), never a message."""

    __slots__ = ()

    def __new__(cls, value: str) -> SqlState:
        """Raises: TypeError if not a str; ValueError if not five digits or upper-case letters."""
        if isinstance(value, SqlState):
            return value
        if not isinstance(value, str):
            raise TypeError(f"a SqlState must be a str, not {type(value).__name__}")
        if not _SQLSTATE.match(value):
            raise ValueError("a SQLSTATE is five digits or upper-case letters")
        return super().__new__(cls, value)


class Label(str):
    """A short label: who placed a hold, a matter or ticket reference (``config.types.check_label``).

    Up to six words of ASCII letters, digits and ``. _ - @ / : # +``: enough for ``j.doe@legal``
    or ``Matter 2026-014``, too little for a sentence.
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Label:
        """Raises: TypeError if not a str; ValueError if it is not a label."""
        if isinstance(value, Label):
            return value
        if not isinstance(value, str):
            raise TypeError(f"a Label must be a str, not {type(value).__name__}")
        check_label(value)
        return super().__new__(cls, value)


class HashList(str):
    """Concatenated SHA-256 hashes (64 lowercase hex characters each) of consecutive entries."""

    __slots__ = ()

    def __new__(cls, value: str) -> HashList:
        """Raises: TypeError if not a str; ValueError if not a multiple of 64 lowercase hex characters."""
        if not isinstance(value, str):
            raise TypeError("a HashList must be a str")
        if not _HASH_LIST.match(value):
            raise ValueError("a HashList is 64 lowercase hex characters per hash")
        return super().__new__(cls, value)


class PublicKeyHex(str):
    """A raw Ed25519 public key as 64 lowercase hex characters (not personal data: a key)."""

    __slots__ = ()

    def __new__(cls, value: str) -> PublicKeyHex:
        """Raises: TypeError if not a str; ValueError if not 64 lowercase hex characters."""
        if not isinstance(value, str):
            raise TypeError("a PublicKeyHex must be a str")
        if not _FINGERPRINT.match(value):
            raise ValueError("a public key is 64 lowercase hex characters")
        return super().__new__(cls, value)


class Signature(str):
    """An Ed25519 signature as 128 lowercase hex characters."""

    __slots__ = ()

    def __new__(cls, value: str) -> Signature:
        """Raises: TypeError if not a str; ValueError if not 128 lowercase hex characters."""
        if not isinstance(value, str):
            raise TypeError("a Signature must be a str")
        if not _SIGNATURE.match(value):
            raise ValueError("a Signature must be 128 lowercase hex characters")
        return super().__new__(cls, value)


class BatchId(str):
    """A batch identifier: a UUID in lowercase hyphenated form, generated by the engine."""

    __slots__ = ()

    def __new__(cls, value: str | uuid.UUID) -> BatchId:
        """Raises: TypeError if not a str/UUID; ValueError if not a canonical UUID."""
        if isinstance(value, uuid.UUID):
            value = str(value)
        if not isinstance(value, str):
            raise TypeError("a BatchId must be a UUID string")
        if str(uuid.UUID(value)) != value:
            raise ValueError("a BatchId must be a lowercase hyphenated UUID")
        return super().__new__(cls, value)

    @classmethod
    def new(cls) -> BatchId:
        """Return a fresh random batch id."""
        return cls(str(uuid.uuid4()))


class Action(StrEnum):
    """What a category does to an expired record."""

    DELETE = "delete"
    ANONYMIZE = "anonymize"


class Outcome(StrEnum):
    """What happened to the records of a batch."""

    DELETED = "deleted"
    ANONYMIZED = "anonymized"
    BLOCKED = "blocked"
    HELD = "held"
    FAILED = "failed"
    SKIPPED = "skipped"


class GuardDecision(StrEnum):
    """What became of a run that would exceed ``max_fraction_per_run``."""

    STOPPED = "stopped"
    ALLOWED = "allowed"  # the operator passed --allow-large for this run


class HoldKind(StrEnum):
    """The kind of a hold (holds.toml ``kind``)."""

    LEGAL = "legal"
    TAX = "tax"
    REGULATORY = "regulatory"
    INVESTIGATION = "investigation"


# Field annotations: plain ``str`` for type checkers (callers pass str), validated and
# converted at run time by the class in the metadata.
NameStr: TypeAlias = Annotated[str, Name]
LabelStr: TypeAlias = Annotated[str, Label]
HashListStr: TypeAlias = Annotated[str, HashList]
PublicKeyStr: TypeAlias = Annotated[str, PublicKeyHex]
DigestStr: TypeAlias = Annotated[str, Digest]
SignatureStr: TypeAlias = Annotated[str, Signature]
BatchIdStr: TypeAlias = Annotated[str, BatchId]
SqlStateStr: TypeAlias = Annotated[str, SqlState]
Refs: TypeAlias = tuple[RecordRef, ...]
Names: TypeAlias = tuple[NameStr, ...]
