"""Fill the demo database (demo/schema.py) with realistic, entirely fake rows.

``seed(engine, now=...)`` creates the tables of :mod:`demo.schema` and inserts a few thousand
rows whose timestamps are spread uniformly over the three years before ``now``, so that a run of
the shipped policy (config/retention.toml) finds, in every category, rows that are expired and
rows that are not. On purpose it also includes:

* rows whose clock has not started (NULL age: open accounts' contacts, open tickets, payment
  instruments and tax ids still in use), which are never expired;
* support tickets that were closed and then reopened (``status = 'open'`` with a ``closed_at``),
  which the policy's ``match = { status = "closed" }`` keeps;
* the accounts ``acct_1042`` and ``acct_2210`` of the example legal hold LIT-2026-014, closed
  more than two years ago, so their contacts and tickets are expired but held;
* prior versions of account contacts and of support tickets, superseded at various ages;
* invoices and tax ids of a few long-standing accounts that are 8-9 years old, beyond the
  7-year tax hold TAX-US-7Y, so some billing rows are eligible while the recent ones are held.

Everything is deterministic for a given ``now``, ``rows_per_table`` and ``rng_seed``. The
names, addresses and numbers are invented; e-mail domains are reserved example domains and IP
addresses come from the documentation ranges (RFC 5737, RFC 3849).

Command line::

    python -m demo.seed --url sqlite:///demo.db [--now 2026-11-29T12:00:00Z] [--rows 250] [--reset]
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from demo import schema

DAY = timedelta(days=1)
YEAR = timedelta(days=365)
SPAN = timedelta(days=3 * 365 + 1)  # "the last three years"

#: Accounts of the example legal hold in config/holds.toml.
HELD_ACCOUNTS = ("acct_1042", "acct_2210")
#: Long-standing customers whose first invoices are older than the 7-year tax hold.
LEGACY_ACCOUNTS = ("acct_1000", "acct_1001", "acct_1002", "acct_1003")

_FIRST = (
    "Ada",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemi",
    "Luca",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomas",
    "Uma",
    "Viktor",
    "Wen",
    "Yusuf",
    "Zoe",
)
_LAST = (
    "Almeida",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
)
_COMPANIES = (
    "Northwind Analytics",
    "Bluefin Robotics",
    "Cedar Health",
    "Driftwood Games",
    "Ember Energy",
    "Foxglove Media",
    "Granite Logistics",
    "Harbor Fintech",
    "Ironbark Labs",
    "Juniper Retail",
    "Kestrel Aviation",
    "Lumen Learning",
    "Meridian Travel",
    "Nimbus Security",
    "Orchid Foods",
)
_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "corp.example")
_CITIES = (
    ("Austin", "US", "787"),
    ("Denver", "US", "802"),
    ("Toronto", "CA", "M5V"),
    ("Berlin", "DE", "101"),
    ("Lyon", "FR", "690"),
    ("Dublin", "IE", "D02"),
    ("Madrid", "ES", "280"),
    ("Utrecht", "NL", "351"),
    ("Sydney", "AU", "200"),
    ("London", "GB", "EC1"),
)
_STREETS = ("Main St", "Oak Avenue", "Harbour Road", "Lindenstrasse", "Rue Centrale", "Calle Mayor")
_ISPS = ("Comcast Cable", "Deutsche Telekom", "Orange", "Vodafone", "AT&T Internet", "Telstra", "BT")
_BROWSERS = (("Chrome", "13"), ("Firefox", "14"), ("Safari", "18"), ("Edge", "13"))
_OSES = ("Windows 11", "macOS 15", "Ubuntu 24.04", "iOS 18", "Android 15", "ChromeOS")
_ZONES = ("America/Chicago", "America/New_York", "Europe/Berlin", "Europe/London", "Australia/Sydney")
_PATHS = (
    "/",
    "/pricing",
    "/blog/commitment-management",
    "/console/dashboard",
    "/console/savings",
    "/console/settings/billing",
    "/docs/getting-started",
    "/console/reports/monthly",
)
_TICKET_SUBJECTS = (
    "Savings report shows unexpected drop",
    "Cannot connect AWS organization",
    "Question about invoice",
    "Request to add a teammate",
    "CloudTrail permissions error",
    "Change billing contact",
    "Reservation purchased twice?",
    "API rate limit reached",
)
_REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
_INSTANCE_TYPES = ("m7g.large", "c7i.xlarge", "r6i.2xlarge", "t4g.medium", "m6a.4xlarge")
_LEAD_SOURCES = ("partner", "conference", "webinar", "purchased_list", "sponsored_link")


def _ts(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A UTC instant uniformly between ``start`` and ``end`` (whole seconds)."""
    if end <= start:
        return start
    seconds = int((end - start).total_seconds())
    return start + timedelta(seconds=rng.randint(0, seconds))


def _ipv4(rng: random.Random) -> str:
    net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{net}.{rng.randint(1, 254)}"


def _ipv6(rng: random.Random) -> str:
    return f"2001:db8:{rng.randint(1, 0xFFFF):x}:{rng.randint(0, 0xFFFF):x}::{rng.randint(1, 0xFFFF):x}"


def _ip(rng: random.Random) -> str:
    return _ipv6(rng) if rng.random() < 0.25 else _ipv4(rng)


def _person(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    email = f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
    return f"{first} {last}", email


def _phone(rng: random.Random) -> str:
    return f"+1-555-{rng.randint(100, 999):03d}-{rng.randint(0, 9999):04d}"


def _address(rng: random.Random) -> tuple[str, str, str, str]:
    city, country, postal = rng.choice(_CITIES)
    line = f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"
    return line, city, f"{postal}{rng.randint(10, 99)}", country


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


class _Account:
    __slots__ = ("id", "created_at", "closed_at", "company")

    def __init__(self, id: str, created_at: datetime, closed_at: datetime | None, company: str):
        self.id, self.created_at, self.closed_at, self.company = id, created_at, closed_at, company

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """When this account can have activity inside the three seeded years."""
        return max(self.created_at, now - SPAN), (self.closed_at or now)


def _accounts(rng: random.Random, now: datetime) -> list[_Account]:
    ids = [f"acct_{n}" for n in range(1000, 1043)] + ["acct_2210"]
    out = []
    for acct in ids:
        company = rng.choice(_COMPANIES)
        if acct in LEGACY_ACCOUNTS:
            created = _ts(rng, now - 9 * YEAR - 180 * DAY, now - 9 * YEAR)
        else:
            created = _ts(rng, now - SPAN, now - 90 * DAY)
        closed: datetime | None = None
        if acct == "acct_1042":
            created, closed = now - SPAN + 20 * DAY, now - 2 * YEAR - 200 * DAY
        elif acct == "acct_2210":
            created, closed = now - SPAN + 60 * DAY, now - 2 * YEAR - 90 * DAY
        elif acct in ("acct_1005", "acct_1006", "acct_1007"):
            # closed long ago: their contacts are past the 2-year period and not held
            created = _ts(rng, now - SPAN, now - SPAN + 60 * DAY)
            closed = _ts(rng, now - 2 * YEAR - 300 * DAY, now - 2 * YEAR - 30 * DAY)
        elif acct not in LEGACY_ACCOUNTS and rng.random() < 0.3:
            closed = _ts(rng, created + 30 * DAY, now - DAY)
        out.append(_Account(acct, created, closed, company))
    return out


_Rows = dict[str, list[dict[str, Any]]]


def _contacts(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of account_contact: every account has an owner; more contacts spread at random."""

    contact_accounts = [a for a in accts] + [rng.choice(accts) for _ in range(max(0, n - len(accts)))]
    version_id = 1
    for cid, a in enumerate(contact_accounts, start=1):
        start, end = a.window(now)
        created = _ts(rng, start, end)
        name, email = _person(rng)
        line, city, postal, country = _address(rng)
        updated = created
        if rng.random() < 0.55:  # prior versions: earlier e-mail / phone / address
            times = sorted(_ts(rng, created, end) for _ in range(rng.randint(1, 3)))
            for superseded in times:
                old_name, old_email = _person(rng)
                old = _address(rng)
                rows["account_contact_versions"].append(
                    {
                        "version_id": version_id,
                        "contact_id": cid,
                        "account_id": a.id,
                        "contact_name": rng.choice((name, old_name)),
                        "email": old_email,
                        "phone": _phone(rng),
                        "address_line": old[0],
                        "city": old[1],
                        "postal_code": old[2],
                        "country_code": old[3],
                        "superseded_at": superseded,
                    }
                )
                version_id += 1
            updated = times[-1]
        rows["account_contacts"].append(
            {
                "id": cid,
                "account_id": a.id,
                "role": "owner" if cid <= len(accts) else rng.choice(("billing", "technical")),
                "contact_name": name,
                "email": email,
                "phone": _phone(rng),
                "address_line": line,
                "city": city,
                "postal_code": postal,
                "country_code": country,
                "created_at": created,
                "updated_at": updated,
                "closed_at": a.closed_at,
            }
        )


def _payments(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of payment_information: tokens; removed ones have a removal time (the clock)."""

    for pid in range(1, n + 1):
        a = rng.choice(accts)
        start, end = a.window(now)
        created = _ts(rng, start, end)
        removed = a.closed_at if a.closed_at else (_ts(rng, created, now) if rng.random() < 0.4 else None)
        card = rng.random() < 0.8
        rows["payment_instruments"].append(
            {
                "id": pid,
                "account_id": a.id,
                "instrument_type": "card" if card else "bank_account",
                "provider": "stripe",
                "provider_token": f"{'pm' if card else 'ba'}_{_hex(rng, 24)}",
                "card_brand": rng.choice(("visa", "mastercard", "amex")) if card else None,
                "last4": f"{rng.randint(0, 9999):04d}",
                "exp_month": rng.randint(1, 12) if card else None,
                "exp_year": created.year + rng.randint(1, 5) if card else None,
                "bank_name": None if card else rng.choice(("First Example Bank", "Demo Savings")),
                "holder_name": _person(rng)[0],
                "created_at": created,
                "removed_at": removed,
            }
        )


def _invoices(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of billing_records: invoices over three years, plus 8-9 year old ones of legacy accounts."""
    by_id = {a.id: a for a in accts}

    invoice_accounts: list[tuple[_Account, datetime]] = []
    for _ in range(n):
        a = rng.choice(accts)
        invoice_accounts.append((a, _ts(rng, *a.window(now))))
    for acct in LEGACY_ACCOUNTS:
        for _ in range(3):
            invoice_accounts.append((by_id[acct], _ts(rng, now - 9 * YEAR, now - 8 * YEAR)))
    invoice_accounts.sort(key=lambda pair: pair[1])
    for iid, (a, issued) in enumerate(invoice_accounts, start=1):
        name, email = _person(rng)
        line, city, postal, country = _address(rng)
        amount = rng.randint(49_00, 25_000_00)
        rows["invoices"].append(
            {
                "id": iid,
                "account_id": a.id,
                "invoice_number": f"INV-{issued.year}-{iid:06d}",
                "issued_at": issued,
                "billing_name": f"{name}, {a.company}",
                "billing_email": email,
                "billing_address": f"{line}, {postal} {city}, {country}",
                "currency": "USD",
                "amount_cents": amount,
                "tax_cents": amount * rng.choice((0, 0, 19, 20)) // 100,
                "status": "open" if issued > now - 30 * DAY else rng.choice(("paid", "paid", "paid", "void")),
            }
        )


def _tax_ids(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of tax_identifiers: one current id per account, some replaced ones, old ones of legacy accounts."""
    tid = 1

    def tax_row(a: _Account, created: datetime, replaced: datetime | None) -> None:
        nonlocal tid
        country = rng.choice(("DE", "FR", "IE", "NL", "US", "GB"))
        id_type, value = (
            ("us_ein", f"{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}")
            if country == "US"
            else ("gb_vat", f"GB{rng.randint(100000000, 999999999)}")
            if country == "GB"
            else ("eu_vat", f"{country}{rng.randint(100000000, 999999999)}")
        )
        rows["tax_identifiers"].append(
            {
                "id": tid,
                "account_id": a.id,
                "id_type": id_type,
                "tax_id": value,
                "country_code": country,
                "verified_at": created + timedelta(hours=rng.randint(1, 72)),
                "created_at": created,
                "replaced_at": replaced,
            }
        )
        tid += 1

    for a in accts:
        if a.id in LEGACY_ACCOUNTS:
            old_created = a.created_at
            tax_row(a, old_created, _ts(rng, now - 9 * YEAR, now - 8 * YEAR))
        start, end = a.window(now)
        if rng.random() < 0.35:
            first = _ts(rng, start, end)
            replaced = _ts(rng, first, end)
            tax_row(a, first, replaced)
            tax_row(a, replaced, a.closed_at)
        else:
            tax_row(a, start, a.closed_at)


def _tickets(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of support_communications: tickets (open, closed, reopened) and their prior versions."""
    by_id = {a.id: a for a in accts}

    ticket_accounts = [rng.choice(accts) for _ in range(n)] + [by_id[h] for h in HELD_ACCOUNTS for _ in range(4)]
    sv = 1
    for tkid, a in enumerate(ticket_accounts, start=1):
        start, end = a.window(now)
        if a.id in HELD_ACCOUNTS:
            end = min(end, start + 120 * DAY)
        opened = _ts(rng, start, end)
        roll = rng.random()
        if a.id not in HELD_ACCOUNTS and a.closed_at is None and roll < 0.10:
            status, closed = "open", None  # clock not started
        else:
            closed = min(opened + timedelta(minutes=rng.randint(10, 30 * 24 * 60)), a.closed_at or now)
            status = "open" if (a.closed_at is None and roll > 0.96) else "closed"  # reopened
        updated = max(opened, closed) if closed else opened
        subject = rng.choice(_TICKET_SUBJECTS)
        channel = rng.choice(("email", "chat", "phone", "web_form"))
        body = f"[{channel}] {subject}. Customer {_person(rng)[0]} wrote from {_person(rng)[1]}."
        if rng.random() < 0.35:
            for superseded in sorted(_ts(rng, opened, updated) for _ in range(rng.randint(1, 2))):
                rows["support_ticket_versions"].append(
                    {
                        "version_id": sv,
                        "ticket_id": tkid,
                        "account_id": a.id,
                        "status": "open",
                        "subject": subject,
                        "body": body + " (draft)",
                        "superseded_at": superseded,
                    }
                )
                sv += 1
        rows["support_tickets"].append(
            {
                "id": tkid,
                "account_id": a.id,
                "channel": channel,
                "status": status,
                "requester_email": _person(rng)[1],
                "subject": subject,
                "body": body,
                "opened_at": opened,
                "updated_at": updated,
                "closed_at": closed,
            }
        )


def _clickstream(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of clickstream: the highest-volume table."""

    for eid in range(1, 3 * n + 1):
        a = rng.choice(accts) if rng.random() < 0.7 else None
        at = _ts(rng, *(a.window(now) if a else (now - SPAN, now)))
        kind = rng.choice(("page_view", "page_view", "click", "scroll", "mouse_over", "search", "download_error"))
        rows["page_events"].append(
            {
                "id": eid,
                "account_id": a.id if a else None,
                "session_id": _hex(rng, 16),
                "occurred_at": at,
                "event_type": kind,
                "url": f"https://www.example.com{rng.choice(_PATHS)}",
                "referrer_url": rng.choice(
                    (None, "https://search.example/", f"https://www.example.com{rng.choice(_PATHS)}")
                ),
                "search_query": rng.choice(("savings plan", "invoice", "cloudtrail")) if kind == "search" else None,
                "element": rng.choice(("#signup", "nav.pricing", "button.export"))
                if kind in ("click", "mouse_over")
                else None,
                "response_ms": rng.randint(20, 2400),
                "ip_address": _ip(rng),
            }
        )


def _connections(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of network_connection: connection logs used for usage metrics."""

    for lid in range(1, 2 * n + 1):
        a = rng.choice(accts)
        at = _ts(rng, *a.window(now))
        rows["connection_logs"].append(
            {
                "id": lid,
                "account_id": a.id,
                "connected_at": at,
                "connection_date": at.date(),
                "ip_address": _ip(rng),
                "isp": rng.choice(_ISPS),
                "request_count": rng.randint(1, 400),
                "bytes_transferred": rng.randint(2_000, 80_000_000),
            }
        )


def _devices(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of device_information."""

    for did in range(1, n + 1):
        a = rng.choice(accts)
        start, end = a.window(now)
        first = _ts(rng, start, end)
        browser, major = rng.choice(_BROWSERS)
        rows["device_profiles"].append(
            {
                "id": did,
                "account_id": a.id,
                "device_type": rng.choice(("desktop", "laptop", "tablet", "phone")),
                "application": rng.choice(("web console", "cli", "mobile app")),
                "browser": browser,
                "browser_version": f"{major}{rng.randint(0, 9)}.0",
                "browser_plugins": rng.choice((None, "pdf-viewer", "1password")),
                "operating_system": rng.choice(_OSES),
                "time_zone": rng.choice(_ZONES),
                "first_seen_at": first,
                "last_seen_at": _ts(rng, first, end),
            }
        )


def _cookies(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of cookie_identifiers."""

    for kid in range(1, n + 1):
        a = rng.choice(accts) if rng.random() < 0.75 else None
        start, end = a.window(now) if a else (now - SPAN, now)
        first = _ts(rng, start, end)
        name, purpose = rng.choice(
            (("session_id", "essential"), ("prefs", "preferences"), ("_ga", "analytics"), ("device_trust", "security"))
        )
        rows["cookie_identifiers"].append(
            {
                "id": kid,
                "account_id": a.id if a else None,
                "cookie_name": name,
                "cookie_value": _hex(rng, 32),
                "purpose": purpose,
                "first_seen_at": first,
                "last_seen_at": _ts(rng, first, end),
            }
        )


def _telemetry(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of cloud_telemetry (SQL part; CloudTrail files live in S3)."""

    for sid in range(1, n + 1):
        a = rng.choice(accts)
        collected = _ts(rng, *a.window(now))
        owner = _person(rng)[0].split()[0].lower()
        rows["ec2_instance_snapshots"].append(
            {
                "id": sid,
                "account_id": a.id,
                "aws_account_number": f"{rng.randint(10**11, 10**12 - 1)}",
                "instance_id": f"i-{_hex(rng, 17)}",
                "instance_type": rng.choice(_INSTANCE_TYPES),
                "region": rng.choice(_REGIONS),
                "platform": rng.choice(("Linux/UNIX", "Windows")),
                "instance_tags": f'{{"owner": "{owner}", "team": "platform"}}',
                "launch_time": collected - timedelta(hours=rng.randint(1, 24 * 400)),
                "collected_at": collected,
                "hourly_cost_micros": rng.randint(5_000, 4_000_000),
            }
        )


def _leads(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of marketing_leads (information from other sources)."""

    for mid in range(1, n + 1):
        received = _ts(rng, now - SPAN, now - DAY)
        converted = rng.random() < 0.15
        name, email = _person(rng)
        line, city, postal, country = _address(rng)
        rows["marketing_leads"].append(
            {
                "id": mid,
                "account_id": rng.choice(accts).id if converted else None,
                "source": rng.choice(_LEAD_SOURCES),
                "full_name": name,
                "email": email,
                "phone": rng.choice((None, _phone(rng))),
                "company": rng.choice(_COMPANIES),
                "job_title": rng.choice(("FinOps lead", "CTO", "Cloud architect", "Controller", None)),
                "physical_address": rng.choice((None, f"{line}, {postal} {city}, {country}")),
                "stage": "converted" if converted else rng.choice(("new", "nurturing", "disqualified")),
                "received_at": received,
                "last_activity_at": _ts(rng, received, now),
            }
        )


def _auth_logs(rng: random.Random, now: datetime, n: int, accts: list[_Account], rows: _Rows) -> None:
    """Add the rows of auth_credential_logs."""

    for sid in range(1, 2 * n + 1):
        a = rng.choice(accts)
        name = _person(rng)[0].split()
        browser, major = rng.choice(_BROWSERS)
        cred = rng.choice(("password", "password", "sso", "api_key"))
        rows["sign_in_events"].append(
            {
                "id": sid,
                "account_id": a.id,
                "occurred_at": _ts(rng, *a.window(now)),
                "username": f"{name[0][0].lower()}{name[1].lower()}",
                "role": rng.choice(("admin", "viewer", "billing")),
                "credential_type": cred,
                "mfa_method": rng.choice((None, "totp", "webauthn")) if cred == "password" else None,
                "outcome": rng.choices(("success", "bad_password", "mfa_failed", "locked"), (85, 10, 4, 1))[0],
                "ip_address": _ip(rng),
                "user_agent": f"Mozilla/5.0 {browser}/{major}{rng.randint(0, 9)}.0",
            }
        )


def _rows(rng: random.Random, now: datetime, n: int) -> _Rows:
    accts = _accounts(rng, now)
    rows: _Rows = {t.name: [] for t in schema.TABLES}
    for a in accts:
        rows["accounts"].append(
            {
                "account_id": a.id,
                "plan": rng.choice(("starter", "growth", "enterprise")),
                "created_at": a.created_at,
                "closed_at": a.closed_at,
            }
        )
    # One table after the other, in this order: every table draws from the same generator.
    for add in (
        _contacts,
        _payments,
        _invoices,
        _tax_ids,
        _tickets,
        _clickstream,
        _connections,
        _devices,
        _cookies,
        _telemetry,
        _leads,
        _auth_logs,
    ):
        add(rng, now, n, accts, rows)
    return rows


def seed(
    engine: sa.Engine,
    *,
    now: datetime,
    rows_per_table: int = 250,
    rng_seed: int = 7,
    reset: bool = False,
) -> dict[str, int]:
    """Create the demo tables and fill them; return the number of rows inserted per table.

    ``rows_per_table`` sets the volume of the per-event tables (clickstream, connection and
    sign-in logs get two to three times as many); per-account tables (accounts, tax ids)
    follow the ~44 accounts. With the default the database holds about 4,000 rows.

    Raises ``ValueError`` if ``now`` is naive, or if the tables already hold rows and ``reset``
    is false (``reset=True`` drops and recreates the demo tables first).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (e.g. 2026-11-29T12:00:00+00:00)")
    if rows_per_table < 1:
        raise ValueError("rows_per_table must be at least 1")
    now = now.astimezone(UTC).replace(microsecond=0)
    rng = random.Random(rng_seed)
    rows = _rows(rng, now, rows_per_table)

    if reset:
        schema.metadata.drop_all(engine)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for table in schema.TABLES:
            if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one():
                raise ValueError(f"table {table.name} already holds rows; seed an empty database or pass reset")
        for table in schema.TABLES:  # parents first
            batch = rows[table.name]
            for i in range(0, len(batch), 1000):
                conn.execute(table.insert(), batch[i : i + 1000])
        if engine.dialect.name == "postgresql":
            # explicit ids were inserted: move each BIGSERIAL sequence past them
            for table in schema.TABLES:
                pk = list(table.primary_key.columns)
                if len(pk) == 1 and isinstance(pk[0].type, sa.Integer):
                    highest = sa.select(sa.func.coalesce(sa.func.max(pk[0]), 0)).scalar_subquery()
                    conn.execute(
                        sa.select(
                            sa.func.setval(
                                sa.func.pg_get_serial_sequence(table.name, pk[0].name),
                                sa.func.greatest(highest, 1),
                            )
                        )
                    )
    return {table.name: len(rows[table.name]) for table in schema.TABLES}


def _parse_now(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone: add Z or +00:00")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL, e.g. sqlite:///demo.db")
    parser.add_argument(
        "--now",
        type=_parse_now,
        default=None,
        help="the demo's 'now' as ISO 8601 with a zone (default: the current time)",
    )
    parser.add_argument("--rows", type=int, default=250, help="rows per table (default 250)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the demo tables first")
    args = parser.parse_args(argv)
    now = args.now or datetime.now(UTC)
    engine = sa.create_engine(args.url)
    try:
        counts = seed(engine, now=now, rows_per_table=args.rows, rng_seed=args.seed, reset=args.reset)
    except (ValueError, sa.exc.SQLAlchemyError) as exc:
        print(f"demo.seed: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(
        f"seeded {sum(counts.values())} rows in {len(counts)} tables "
        f"({counts['accounts']} accounts, {counts['account_contact_versions'] + counts['support_ticket_versions']} "
        f"prior versions) at {engine.url.render_as_string(hide_password=True)} "
        f"as of {now.astimezone(UTC).isoformat()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
