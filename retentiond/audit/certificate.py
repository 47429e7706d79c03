"""Certificates of erasure: what a request erased, kept and why, signed, checkable offline.

A certificate is one JSON object (format ``retentiond-erasure-certificate-v1``) with the
fields of NIST SP 800-88 Rev. 1, Appendix G ("Sample Certificate of Sanitization"), adapted
to records instead of media:

=====================================  ===============================================
Appendix G                             certificate field
=====================================  ===============================================
person performing sanitization         ``performed_by`` (the actor of ``erasure_requested``)
media type / source / serial number    ``sanitized[]``: category, store, table or bucket
                                       (and prefix), record counts — never a record's value
sanitization description / method      ``sanitized[].method``: delete, or anonymize
tool used (and version)                ``tool``
verification method / result           ``verification``
date                                   ``started``, ``finished``, ``issued_at``
(what was not sanitized, and why)      ``kept[]``: hold id, or the rule ``erasure = "never"``
(proof)                                ``entries[]`` (seq, event, hash) and ``checkpoint``
=====================================  ===============================================

``signature`` is Ed25519 (the ledger's signing key, ``key_fingerprint``) over the RFC 8785
canonical JSON of the object without ``signature``. :func:`check` verifies the signature and,
given the verified entries of the ledger (or of an export), that every cited entry is in the
chain with the stated hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from retentiond.audit.canonical import canonical_loads, jcs_dumps, utcnow_text
from retentiond.audit.entry import Entry
from retentiond.audit.reading import LedgerReader
from retentiond.audit.signing import Signer, fingerprint, verify_signature

FORMAT = "retentiond-erasure-certificate-v1"

VERIFICATION_METHOD = (
    "Each DELETE/UPDATE re-checks the selection and holds and returns the keys it really touched "
    "(RETURNING); S3 deletions are confirmed per version by DeleteObjects results (verify_deletes "
    "re-lists them when enabled); after the batches a re-count of what is still eligible must be 0."
)


class CertificateError(ValueError):
    """No certificate can be issued for the request (unknown, or not finished)."""


def _request_entries(reader: LedgerReader, request: str) -> tuple[list[Entry], list[Entry], list[Entry]]:
    """Return the request's ``erasure_requested``, ``batch`` and ``erasure_finished`` entries."""
    requested = [e for e in reader.iter_entries(event="erasure_requested") if e.fields.get("request") == request]
    batches = [e for e in reader.iter_entries(event="batch") if e.fields.get("request") == request]
    finished = [e for e in reader.iter_entries(event="erasure_finished") if e.fields.get("request") == request]
    return requested, batches, finished


def build(reader: LedgerReader, request: str, signer: Signer, tool_version: str) -> dict[str, Any]:
    """Return the signed certificate of erasure request ``request``.

    Raises:
        CertificateError: the ledger has no finished request of that reference.
    """
    requested, batches, finished = _request_entries(reader, request)
    if not requested:
        raise CertificateError(f"the ledger has no erasure request {request}")
    if not finished:
        raise CertificateError(
            f"erasure request {request} has not finished: run it again, then ask for its certificate"
        )
    first, last = requested[0], finished[-1]
    sanitized: Counter[tuple[str, str, str, str, str]] = Counter()
    prior: Counter[tuple[str, str, str, str, str]] = Counter()
    for e in batches:
        f = e.fields
        if f["outcome"] not in ("deleted", "anonymized"):
            continue
        key = (str(e.category), f["store"], f["target"], f.get("prefix") or "", f["action"])
        # A batch's prior_versions are the prior versions among its own records (history rows, noncurrent versions).
        pv = int(f.get("prior_versions") or 0)
        sanitized[key] += int(f["count"]) - pv
        prior[key] += pv
    final = last.fields
    kept: list[dict[str, Any]] = []
    for key, n in sorted(final.get("held", {}).items()):
        category, _, hold_id = key.partition("/")
        kept.append({"category": category, "records": n, "reason": "hold", "hold_id": hold_id})
    for category, n in sorted(final.get("kept_by_rule", {}).items()):
        kept.append({"category": category, "records": n, "reason": "rule", "rule": 'erasure = "never"'})
    for category, n in sorted(final.get("blocked", {}).items()):
        kept.append({"category": category, "records": n, "reason": "object_lock", "rule": "S3 Object Lock"})
    failed = dict(final.get("failed", {}))
    cited = sorted([*requested, *batches, *finished], key=lambda e: e.seq)
    checkpoint = reader.first_checkpoint_after(cited[-1].seq - 1) if cited else None
    cert: dict[str, Any] = {
        "format": FORMAT,
        "request": request,
        "ledger_id": reader.ledger_id,
        "tool": {"name": "retentiond", "version": tool_version},
        "performed_by": {k: first.fields.get(k) for k in ("actor_unit", "actor_user", "actor_sudo_user")},
        "subjects": int(first.fields.get("subjects", 0)),
        "subject_refs": [bytes(r).hex() for r in first.refs],
        "started": first.time,
        "finished": last.time,
        "runs": sorted({str(e.run_id) for e in requested}),
        "sanitized": [
            {
                "category": k[0],
                "store": k[1],
                "target": k[2],
                "prefix": k[3] or None,
                "method": "anonymize" if k[4] == "anonymize" else "delete",
                "records": n,
                "prior_versions": prior[k],
            }
            for k, n in sorted(sanitized.items())
        ],
        "kept": kept,
        "failed": failed,
        "verification": {
            "method": VERIFICATION_METHOD,
            "result": "complete" if not any(failed.values()) and not final.get("failed_categories") else "incomplete",
        },
        "entries": [{"seq": e.seq, "event": e.event, "hash": e.hash.hex()} for e in cited],
        "checkpoint": None
        if checkpoint is None
        else {
            "seq": checkpoint.seq,
            "hash": checkpoint.hash.hex(),
            "covered_seq": checkpoint.fields["covered_seq"],
            "signed_at": checkpoint.fields["signed_at"],
            "key_fingerprint": checkpoint.fields["key_fingerprint"],
        },
        "issued_at": utcnow_text(),
        "key_fingerprint": signer.fingerprint,
    }
    cert["signature"] = signer.sign(signed_bytes(cert))
    return cert


def signed_bytes(cert: Mapping[str, Any]) -> bytes:
    """Return what the signature covers: the RFC 8785 canonical JSON of ``cert`` without ``signature``."""
    return jcs_dumps({k: v for k, v in cert.items() if k != "signature"}).encode("utf-8")


def dumps(cert: Mapping[str, Any]) -> str:
    """Return the certificate's file text: its canonical JSON and a newline."""
    return jcs_dumps(dict(cert)) + "\n"


def loads(text: str | bytes) -> dict[str, Any]:
    """Return the certificate in ``text``.

    Raises:
        ValueError: not JSON, or not a certificate of this format.
    """
    data = canonical_loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    return data


def check(
    cert: Mapping[str, Any], keys: Iterable[Ed25519PublicKey], chain: Mapping[int, str] | None = None
) -> list[str]:
    """Return the problems of ``cert`` (empty: it verifies).

    ``keys`` are the public keys trusted to sign; ``chain`` maps seq → hash (hex) of a *verified*
    ledger or export: every entry and the checkpoint the certificate cites must be there, identical.
    """
    problems: list[str] = []
    by_fp = {fingerprint(k): k for k in keys}
    key = by_fp.get(str(cert.get("key_fingerprint")))
    if key is None:
        problems.append("signed by a key that is not among the given public keys")
    elif not verify_signature(key, str(cert.get("signature", "")), signed_bytes(cert)):
        problems.append("signature does not match the certificate's content")
    if chain is not None:
        cited = list(cert.get("entries") or [])
        if cert.get("checkpoint"):
            cited.append(cert["checkpoint"])
        else:
            problems.append("no checkpoint covers the cited entries")
        for item in cited:
            seq, stated = item.get("seq"), item.get("hash")
            if chain.get(seq) != stated:
                problems.append(f"entry seq {seq} is not in the verified chain with the stated hash")
    return problems


def render_html(cert: Mapping[str, Any]) -> str:
    """Return the certificate as a self-contained HTML page for the person who asked (no scripts)."""
    from html import escape

    def rows(items: Iterable[Mapping[str, Any]], cols: list[str]) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{escape(str(i.get(c) if i.get(c) is not None else ''))}</td>" for c in cols)
            + "</tr>"
            for i in items
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    who = ", ".join(str(v) for v in cert["performed_by"].values() if v) or "-"
    checkpoint = cert.get("checkpoint") or {}
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Certificate of erasure {escape(cert['request'])}</title>"
        "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.25em .6em;"
        "text-align:left}code{word-break:break-all}</style></head><body>"
        f"<h1>Certificate of erasure</h1><p>Request <b>{escape(cert['request'])}</b>: "
        f"{cert['subjects']} data subject(s). Started {escape(cert['started'])}, finished "
        f"{escape(cert['finished'])}, performed by {escape(who)} with {escape(cert['tool']['name'])} "
        f"{escape(cert['tool']['version'])}.</p>"
        "<h2>Erased</h2>"
        + rows(cert["sanitized"], ["category", "store", "target", "prefix", "method", "records", "prior_versions"])
        + "<h2>Kept, and why</h2>"
        + (
            rows(cert["kept"], ["category", "records", "reason", "hold_id", "rule"])
            if cert["kept"]
            else "<p>Nothing.</p>"
        )
        + f"<h2>Verification</h2><p>{escape(cert['verification']['method'])}</p>"
        f"<p>Result: <b>{escape(cert['verification']['result'])}</b></p>"
        f"<h2>Proof</h2><p>{len(cert['entries'])} entries of ledger <code>{escape(cert['ledger_id'])}</code>, "
        f"covered by the signed checkpoint at seq {escape(str(checkpoint.get('seq', '-')))}. "
        f"Certificate signed by key <code>{escape(cert['key_fingerprint'])}</code>; signature "
        f"<code>{escape(cert['signature'])}</code>.</p></body></html>\n"
    )


__all__ = ["FORMAT", "CertificateError", "build", "check", "dumps", "loads", "render_html", "signed_bytes"]
