"""The demo application's database: every SQL table that ``config/retention.toml`` names.

One SQLAlchemy Core ``MetaData`` that works on PostgreSQL (the primary target) and SQLite (the
embedded default used by ``make demo``). Conventions the shipped policy relies on:

* **Age columns** (the column a category's clock starts from) are ``DateTime(timezone=True)``:
  ``timestamptz`` in PostgreSQL. SQLite has no time zone type; the demo seed writes UTC there.
  A NULL age means "the clock has not started" (an open account, an open ticket, a payment
  instrument still in use) and such rows are never expired.
* **Subject column** ``account_id`` (text, ``acct_NNNN``) on every table, so holds by subject and
  erasure requests work the same way everywhere. It is NULL where the data is not (yet) tied to
  an account: anonymous clickstream and cookies, marketing leads that never converted.
* Every age column, subject column, history parent column and superseded column has an index,
  so batched retention statements are served by an index range scan.
* **History tables** (prior versions, SPEC §1) have a ``superseded_at`` timestamptz and a foreign
  key to the current record *without* ``ON DELETE CASCADE``: retentiond deletes the prior versions
  itself, in the same transaction, and audits them (SPEC §4 rule 6).
* **Anonymized columns fit their strategy** (SPEC §3):

  ================================  =======================  ===============================
  table.column                      strategy (category)      column type
  ================================  =======================  ===============================
  page_events.ip_address            truncate_ip (network)    Text, nullable
  connection_logs.ip_address        truncate_ip (network)    Text, nullable
  connection_logs.isp               redact (network)         Text, nullable
  connection_logs.connection_date   month (network)          Date, not null
  ================================  =======================  ===============================

  IP addresses are ``Text`` rather than PostgreSQL ``inet`` so the same schema runs on SQLite;
  ``truncate_ip`` writes ``192.0.2.0`` / ``2001:db8:1::`` which is valid text in both.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TZ = sa.DateTime(timezone=True)


def _account_fk() -> sa.ForeignKey:
    # No ON DELETE action: deleting an account row is not something the retention policy does,
    # and no cascade may ever reach into tables retentiond manages.
    return sa.ForeignKey("accounts.account_id")


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.Text, primary_key=True),
    sa.Column("plan", sa.Text, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("closed_at", TZ, nullable=True),
    sa.Index("ix_accounts_closed_at", "closed_at"),
    comment="Tenant accounts; not a retention target itself (holds no personal data).",
)

# --- account_contact -------------------------------------------------------------------------

account_contacts = sa.Table(
    "account_contacts",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("role", sa.Text, nullable=False),  # owner | billing | technical
    sa.Column("contact_name", sa.Text, nullable=True),
    sa.Column("email", sa.Text, nullable=True),
    sa.Column("phone", sa.Text, nullable=True),
    sa.Column("address_line", sa.Text, nullable=True),
    sa.Column("city", sa.Text, nullable=True),
    sa.Column("postal_code", sa.Text, nullable=True),
    sa.Column("country_code", sa.Text, nullable=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    # Age column: when the account was closed (copied from accounts.closed_at by the app).
    sa.Column("closed_at", TZ, nullable=True),
    sa.Index("ix_account_contacts_closed_at", "closed_at"),
    sa.Index("ix_account_contacts_account_id", "account_id"),
)

account_contact_versions = sa.Table(
    "account_contact_versions",
    metadata,
    sa.Column("version_id", sa.BigInteger, primary_key=True),
    sa.Column("contact_id", sa.BigInteger, sa.ForeignKey("account_contacts.id"), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("contact_name", sa.Text, nullable=True),
    sa.Column("email", sa.Text, nullable=True),
    sa.Column("phone", sa.Text, nullable=True),
    sa.Column("address_line", sa.Text, nullable=True),
    sa.Column("city", sa.Text, nullable=True),
    sa.Column("postal_code", sa.Text, nullable=True),
    sa.Column("country_code", sa.Text, nullable=True),
    sa.Column("superseded_at", TZ, nullable=False),
    sa.Index("ix_account_contact_versions_superseded_at", "superseded_at"),
    sa.Index("ix_account_contact_versions_contact_id", "contact_id"),
    sa.Index("ix_account_contact_versions_account_id", "account_id"),
)

# --- payment_information ---------------------------------------------------------------------

payment_instruments = sa.Table(
    "payment_instruments",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("instrument_type", sa.Text, nullable=False),  # card | bank_account
    sa.Column("provider", sa.Text, nullable=False),
    # The PCI DSS payment provider's token; the card number itself is never stored.
    sa.Column("provider_token", sa.Text, nullable=False),
    sa.Column("card_brand", sa.Text, nullable=True),
    sa.Column("last4", sa.Text, nullable=False),
    sa.Column("exp_month", sa.Integer, nullable=True),
    sa.Column("exp_year", sa.Integer, nullable=True),
    sa.Column("bank_name", sa.Text, nullable=True),
    sa.Column("holder_name", sa.Text, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    # Age column: when the customer removed or replaced the instrument; NULL while in use.
    sa.Column("removed_at", TZ, nullable=True),
    sa.Index("ix_payment_instruments_removed_at", "removed_at"),
    sa.Index("ix_payment_instruments_account_id", "account_id"),
)

# --- billing_records -------------------------------------------------------------------------

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("invoice_number", sa.Text, nullable=False, unique=True),
    sa.Column("issued_at", TZ, nullable=False),
    sa.Column("billing_name", sa.Text, nullable=False),
    sa.Column("billing_email", sa.Text, nullable=False),
    sa.Column("billing_address", sa.Text, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("amount_cents", sa.BigInteger, nullable=False),
    sa.Column("tax_cents", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # paid | open | void
    sa.Index("ix_invoices_issued_at", "issued_at"),
    sa.Index("ix_invoices_account_id", "account_id"),
)

# --- tax_identifiers -------------------------------------------------------------------------

tax_identifiers = sa.Table(
    "tax_identifiers",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("id_type", sa.Text, nullable=False),  # eu_vat | gb_vat | us_ein | au_abn ...
    sa.Column("tax_id", sa.Text, nullable=False),
    sa.Column("country_code", sa.Text, nullable=False),
    sa.Column("verified_at", TZ, nullable=True),
    sa.Column("created_at", TZ, nullable=False),
    # Age column: when the identifier was replaced or the account stopped using it; NULL = current.
    sa.Column("replaced_at", TZ, nullable=True),
    sa.Index("ix_tax_identifiers_replaced_at", "replaced_at"),
    sa.Index("ix_tax_identifiers_account_id", "account_id"),
)

# --- support_communications ------------------------------------------------------------------

support_tickets = sa.Table(
    "support_tickets",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("channel", sa.Text, nullable=False),  # email | chat | phone | web_form
    sa.Column("status", sa.Text, nullable=False),  # open | closed (a reopened ticket is open again)
    sa.Column("requester_email", sa.Text, nullable=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("opened_at", TZ, nullable=False),
    sa.Column("updated_at", TZ, nullable=False),
    # Age column: when the ticket was (last) closed; NULL while it has never been closed.
    sa.Column("closed_at", TZ, nullable=True),
    sa.Index("ix_support_tickets_closed_at", "closed_at"),
    sa.Index("ix_support_tickets_account_id", "account_id"),
)

support_ticket_versions = sa.Table(
    "support_ticket_versions",
    metadata,
    sa.Column("version_id", sa.BigInteger, primary_key=True),
    sa.Column("ticket_id", sa.BigInteger, sa.ForeignKey("support_tickets.id"), nullable=False),
    sa.Column("account_id", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("superseded_at", TZ, nullable=False),
    sa.Index("ix_support_ticket_versions_superseded_at", "superseded_at"),
    sa.Index("ix_support_ticket_versions_ticket_id", "ticket_id"),
    sa.Index("ix_support_ticket_versions_account_id", "account_id"),
)

# --- clickstream (+ network_connection anonymizes ip_address here) ---------------------------

page_events = sa.Table(
    "page_events",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=True),  # NULL: visitor not signed in
    sa.Column("session_id", sa.Text, nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    # page_view | click | scroll | mouse_over | search | download_error
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("referrer_url", sa.Text, nullable=True),
    sa.Column("search_query", sa.Text, nullable=True),
    sa.Column("element", sa.Text, nullable=True),
    sa.Column("response_ms", sa.Integer, nullable=True),
    sa.Column("ip_address", sa.Text, nullable=True),
    sa.Index("ix_page_events_occurred_at", "occurred_at"),
    sa.Index("ix_page_events_account_id", "account_id"),
)

# --- network_connection ----------------------------------------------------------------------

connection_logs = sa.Table(
    "connection_logs",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("connected_at", TZ, nullable=False),
    # Day of the connection, for daily usage metrics; anonymized to the first of its month.
    sa.Column("connection_date", sa.Date, nullable=False),
    sa.Column("ip_address", sa.Text, nullable=True),
    sa.Column("isp", sa.Text, nullable=True),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("bytes_transferred", sa.BigInteger, nullable=False),
    sa.Index("ix_connection_logs_connected_at", "connected_at"),
    sa.Index("ix_connection_logs_account_id", "account_id"),
)

# --- device_information ----------------------------------------------------------------------

device_profiles = sa.Table(
    "device_profiles",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("device_type", sa.Text, nullable=False),  # desktop | laptop | tablet | phone
    sa.Column("application", sa.Text, nullable=False),  # web console | CLI | mobile app
    sa.Column("browser", sa.Text, nullable=True),
    sa.Column("browser_version", sa.Text, nullable=True),
    sa.Column("browser_plugins", sa.Text, nullable=True),
    sa.Column("operating_system", sa.Text, nullable=False),
    sa.Column("time_zone", sa.Text, nullable=False),
    sa.Column("first_seen_at", TZ, nullable=False),
    sa.Column("last_seen_at", TZ, nullable=False),
    sa.Index("ix_device_profiles_last_seen_at", "last_seen_at"),
    sa.Index("ix_device_profiles_account_id", "account_id"),
)

# --- cookie_identifiers ----------------------------------------------------------------------

cookie_identifiers = sa.Table(
    "cookie_identifiers",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=True),  # NULL: cookie never tied to a sign-in
    sa.Column("cookie_name", sa.Text, nullable=False),
    sa.Column("cookie_value", sa.Text, nullable=False),
    sa.Column("purpose", sa.Text, nullable=False),  # essential | preferences | analytics | security
    sa.Column("first_seen_at", TZ, nullable=False),
    sa.Column("last_seen_at", TZ, nullable=False),
    sa.Index("ix_cookie_identifiers_last_seen_at", "last_seen_at"),
    sa.Index("ix_cookie_identifiers_account_id", "account_id"),
)

# --- cloud_telemetry -------------------------------------------------------------------------

ec2_instance_snapshots = sa.Table(
    "ec2_instance_snapshots",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("aws_account_number", sa.Text, nullable=False),
    sa.Column("instance_id", sa.Text, nullable=False),
    sa.Column("instance_type", sa.Text, nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("platform", sa.Text, nullable=False),
    sa.Column("instance_tags", sa.Text, nullable=True),  # JSON text; may name people or teams
    sa.Column("launch_time", TZ, nullable=False),
    sa.Column("collected_at", TZ, nullable=False),
    sa.Column("hourly_cost_micros", sa.BigInteger, nullable=False),
    sa.Index("ix_ec2_instance_snapshots_collected_at", "collected_at"),
    sa.Index("ix_ec2_instance_snapshots_account_id", "account_id"),
)

# --- marketing_leads -------------------------------------------------------------------------

marketing_leads = sa.Table(
    "marketing_leads",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, nullable=True),  # set when the lead became a customer
    sa.Column("source", sa.Text, nullable=False),  # partner | conference | webinar | list | ads
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("phone", sa.Text, nullable=True),
    sa.Column("company", sa.Text, nullable=True),
    sa.Column("job_title", sa.Text, nullable=True),
    sa.Column("physical_address", sa.Text, nullable=True),
    sa.Column("stage", sa.Text, nullable=False),  # new | nurturing | converted | disqualified
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("last_activity_at", TZ, nullable=False),
    sa.Index("ix_marketing_leads_last_activity_at", "last_activity_at"),
    sa.Index("ix_marketing_leads_account_id", "account_id"),
)

# --- auth_credential_logs --------------------------------------------------------------------

sign_in_events = sa.Table(
    "sign_in_events",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("account_id", sa.Text, _account_fk(), nullable=False),
    sa.Column("occurred_at", TZ, nullable=False),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("credential_type", sa.Text, nullable=False),  # password | sso | api_key
    sa.Column("mfa_method", sa.Text, nullable=True),
    sa.Column("outcome", sa.Text, nullable=False),  # success | bad_password | mfa_failed | locked
    sa.Column("ip_address", sa.Text, nullable=True),
    sa.Column("user_agent", sa.Text, nullable=True),
    sa.Index("ix_sign_in_events_occurred_at", "occurred_at"),
    sa.Index("ix_sign_in_events_account_id", "account_id"),
)

#: Tables in dependency order (parents first): the order to create and fill them.
TABLES: tuple[sa.Table, ...] = tuple(metadata.sorted_tables)
