"""Least-privilege PostgreSQL roles of docs/auditing.md, and checkpoints anchored in S3 Object Lock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from retentiond.audit import KeyRing, Ledger, RunFinished, Signer
from retentiond.audit.anchor import Anchor
from retentiond.audit.roles import LedgerRoles, ledger_roles_sql, owner_grants, statements, superuser_sql
from retentiond.audit.schema import entries_table, head_table, refs_table
from retentiond.audit.verify import DamageKind


@pytest.fixture
def roles(pg_admin: sa.Engine, pg_db_factory: Callable[[], str]) -> Iterator[dict[str, str]]:
    """A fresh database with owner / writer / auditor roles set up by the generated script of docs/auditing.md."""
    url = sa.engine.make_url(pg_db_factory())
    suffix = uuid.uuid4().hex[:10]
    names = LedgerRoles(
        owner=f"rtd_owner_{suffix}",
        writer=f"rtd_writer_{suffix}",
        auditor=f"rtd_auditor_{suffix}",
        database=url.database,
    )
    db_engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with db_engine.connect() as conn:
        for statement in statements(superuser_sql(names)):
            conn.exec_driver_sql(statement)
    role_names = {"owner": names.owner, "writer": names.writer, "auditor": names.auditor}
    urls = {r: url.set(username=n).render_as_string(hide_password=False) for r, n in role_names.items()}
    urls["_grants"] = "\n".join(statements(owner_grants(names)))
    yield urls
    db_engine.dispose()
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        for name in role_names.values():
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))


def _denied(url: str, stmt: Any) -> bool:
    """Return True when ``stmt`` fails as the URL's role with SQLSTATE 42501 (insufficient privilege)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(stmt)
    except sa.exc.DBAPIError as exc:
        return getattr(exc.orig, "sqlstate", None) == "42501"
    finally:
        engine.dispose()
    return False


class TestRolesDocumented:
    """docs/auditing.md shows exactly the script `retentiond print-grants` prints for the ledger."""

    def test_doc_block_is_generated(self) -> None:
        """The doc's SQL block under "PostgreSQL: least privilege" equals ledger_roles_sql()."""
        doc = (Path(__file__).resolve().parents[2] / "docs" / "auditing.md").read_text(encoding="utf-8")
        section = doc.split("## PostgreSQL: least privilege", 1)[1]
        block = section.split("```sql\n", 1)[1].split("```", 1)[0]
        assert ledger_roles_sql() == block


class TestLeastPrivilegeRoles:
    """The owner creates, the writer only appends, the auditor only reads."""

    def test_roles(self, roles: dict[str, str], signer: Signer, keys: KeyRing) -> None:
        Ledger.open(roles["owner"]).close()  # `retentiond audit init` as the owner
        owner = sa.create_engine(roles["owner"])
        with owner.begin() as conn:
            for stmt in roles["_grants"].splitlines():
                conn.exec_driver_sql(stmt)
        owner.dispose()
        with Ledger.open(roles["writer"]) as ledger:
            ledger.append(RunFinished(counts={"deleted": 1}), run_id="run-1")
            ledger.checkpoint(signer)
        with Ledger.open(roles["auditor"], create=False) as ledger:
            assert (True, 2) == (ledger.verify(keys).ok, ledger.verify(keys).entries)
        assert [True] * 7 == [
            _denied(roles["writer"], sa.delete(entries_table)),
            _denied(roles["writer"], sa.update(entries_table).values(event="x")),
            _denied(roles["writer"], sa.text("TRUNCATE audit_entries")),
            _denied(roles["writer"], sa.delete(refs_table)),
            _denied(roles["writer"], sa.text("DROP TRIGGER audit_entries_append_only ON audit_entries")),
            _denied(roles["auditor"], sa.insert(head_table).values(id=2, ledger_id="x", seq=0, hash=b"")),
            _denied(roles["auditor"], sa.update(head_table).values(seq=head_table.c.seq + 1)),
        ]
        with pytest.raises(sa.exc.DBAPIError), Ledger.open(roles["auditor"], create=False) as ledger:
            ledger.append(RunFinished(counts={}))


class TestAnchor:
    """Checkpoints written to an Object Lock bucket act as trusted state for verify."""

    def test_anchor_put_latest_and_truncation(
        self, s3_client: Any, url_factory: Callable[[], str], signer: Signer, keys: KeyRing
    ) -> None:
        s3_client.create_bucket(Bucket="audit-anchors", ObjectLockEnabledForBucket=True)
        anchor = Anchor(s3_client, "audit-anchors", "retentiond/", "retentiond", retain_days=1)
        url = url_factory()
        with Ledger.open(url) as ledger:
            assert anchor.latest() is None
            for _ in range(3):
                ledger.append(RunFinished(counts={}))
                entry = ledger.checkpoint(signer)
                assert entry is not None
                key = anchor.put(entry)
            head = s3_client.head_object(Bucket="audit-anchors", Key=key)
            latest = anchor.latest()
            assert latest is not None
            assert ("COMPLIANCE", 6, True) == (
                head["ObjectLockMode"],
                latest.seq,
                ledger.verify(keys, trusted=[latest]).ok,
            )
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(sa.text("DROP TRIGGER audit_entries_no_delete"))
                conn.execute(sa.text("DROP TRIGGER audit_refs_no_delete"))
            conn.execute(sa.delete(entries_table).where(entries_table.c.seq > 4))
        engine.dispose()
        with Ledger.open(url) as ledger:
            result = ledger.verify(keys, trusted=[latest])
            assert (5, DamageKind.TRUNCATED) == (result.damage.seq, result.damage.kind)  # type: ignore[union-attr]
