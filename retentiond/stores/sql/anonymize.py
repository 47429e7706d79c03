"""Value rewrites of the anonymize strategies that cannot run inside the UPDATE everywhere.

``hmac`` pseudonyms are keyed and stable (the same input gives the same pseudonym in every
run, so joins across anonymized tables still work) and carry a prefix the statements
recognise, which keeps anonymization idempotent.
"""

from __future__ import annotations

import hashlib
import hmac as _hmac
import ipaddress
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from retentiond.stores.sql.keyed import KeyedHash
from retentiond.stores.sql.predicates import PSEUDONYM_HEX, PSEUDONYM_PREFIX, REDACTED, fixed_value

_MESSAGE = "retentiond-pseudonym-v1|"


class Pseudonymizer:
    """Keyed, stable pseudonyms: ``anon:`` + 32 hex characters of HMAC-SHA256."""

    def __init__(self, key: bytes) -> None:
        self._base = _hmac.new(key, _MESSAGE.encode(), hashlib.sha256)
        #: The same pseudonyms made inside a PostgreSQL statement (``keyed.load`` in its transaction).
        self.keyed = KeyedHash({"pseudonym": key})

    def sql(self, scope: str, column: sa.Column[Any]) -> ColumnElement[Any] | None:
        """Return the SQL expression of the pseudonym of ``column``'s value within ``scope``, or None.

        Only for text columns, whose SQL text is the value Python's pseudonym is made of.
        """
        if not isinstance(column.type, sa.String) or isinstance(column.type, sa.Enum | sa.CHAR | sa.NCHAR):
            return None
        message = sa.literal(f"{_MESSAGE}{scope}|", sa.Text).op("||")(sa.cast(column, sa.Text))
        digest = sa.func.encode(self.keyed.digest("pseudonym", message), "hex", type_=sa.Text)
        return sa.literal(PSEUDONYM_PREFIX, sa.Text).op("||")(sa.func.substr(digest, 1, PSEUDONYM_HEX))

    def __call__(self, scope: str, value: Any) -> str:
        """Return the pseudonym of ``value`` within ``scope`` (``store/table/column``)."""
        h = self._base.copy()
        h.update(f"{scope}|{value}".encode())
        return PSEUDONYM_PREFIX + h.hexdigest()[:PSEUDONYM_HEX]


def truncate_ip(value: Any) -> Any:
    """Return the IPv4 /24 or IPv6 /48 network address of ``value``; "0.0.0.0" when it is not an address."""
    text = str(value).strip()
    try:
        address = ipaddress.ip_address(text.split("/")[0])
    except ValueError:
        return "0.0.0.0"
    prefix = 24 if address.version == 4 else 48
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


def truncate_date(value: Any, unit: str) -> Any:
    """Return ``value`` truncated to the first instant of its year or month."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            # Truncate on the UTC calendar, whatever the database session's time zone.
            value = value.astimezone(UTC)
        out = value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return out.replace(month=1) if unit == "year" else out
    if isinstance(value, date):
        out_d = value.replace(day=1)
        return out_d.replace(month=1) if unit == "year" else out_d
    return value


def rewrite(column: sa.Column[Any], strategy: str, value: Any, pseudonym: Pseudonymizer, scope: str) -> Any:
    """Return the anonymized form of ``value`` under ``strategy`` (NULL stays NULL)."""
    if value is None:
        return None
    if strategy == "null":
        return None
    if strategy == "redact":
        return REDACTED
    if strategy.startswith("fixed:"):
        return fixed_value(column, strategy)
    if strategy == "hmac":
        return value if str(value).startswith(PSEUDONYM_PREFIX) else pseudonym(scope, value)
    if strategy == "truncate_ip":
        return truncate_ip(value)
    if strategy in ("year", "month"):
        return truncate_date(value, strategy)
    raise ValueError(f"unknown strategy {strategy!r}")  # pragma: no cover - validation refuses it
