#!/usr/bin/env python3
"""Verify a retentiond audit-ledger export without retentiond.

Usage: verify_ledger.py EXPORT.jsonl --pubkey KEY.pub.pem [--pubkey OLD.pub.pem] [--trusted FILE]
                        [--max-unsigned-age SECONDS] [--allow-unsigned-tail] [--certificate CERT.json]...

With ``--certificate`` it also checks certificates of erasure (docs/erasure.md): the signature
over the certificate's canonical JSON without ``signature``, by one of the given keys, and that
every entry and the checkpoint the certificate cites are in the verified export with those hashes.

Written from "The format, byte for byte" and "How verification decides" in docs/auditing.md;
needs only the Python standard library and `cryptography` (Ed25519). It does not import
retentiond. Prints one line, "OK ..." (exit 0) or "FAILED seq N: kind: why" (exit 65);
exit 2 for a bad argument or unreadable key. Memory grows with the export (the entries'
hashes are kept: about 200 bytes per entry).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

OUTCOMES = {"batch", "guard_tripped", "run_finished", "run_interrupted", "reconciled", "erasure_finished"}
CERTIFICATE_FORMAT = "retentiond-erasure-certificate-v1"
GRACE = timedelta(minutes=5)
FORMATS = ("retentiond-audit-export-v1", "retentiond-audit-export-v2")


class Failed(Exception):
    """Verification failed at ``seq`` (None: not tied to one entry)."""

    def __init__(self, seq: int | None, kind: str, detail: str) -> None:
        super().__init__(f"{'ledger' if seq is None else f'seq {seq}'}: {kind}: {detail}")
        self.seq, self.kind = seq, kind


def jcs(value: object) -> str:
    """RFC 8785 canonical JSON of what a ledger may hold: no floats, integers within +-(2**53 - 1)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > 2**53 - 1:
            raise ValueError("integer beyond 2**53 - 1")
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # escapes exactly what JCS escapes
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))  # JCS: UTF-16 code unit order
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + jcs(value[k]) for k in keys) + "}"
    raise ValueError(f"{type(value).__name__} is not allowed")


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fingerprint(key: Ed25519PublicKey) -> str:
    return sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hex()


def good_signature(key: Ed25519PublicKey, signature: object, message: dict[str, Any]) -> bool:
    try:
        key.verify(bytes.fromhex(str(signature)), jcs(message).encode())
    except (InvalidSignature, ValueError):
        return False
    return True


def no_float(text: str) -> float:
    raise ValueError("a float")


class Verifier:
    """Applies the rules of docs/auditing.md to the entries of one export, in order."""

    def __init__(
        self, ledger_id: str, keys: dict[str, Any], trusted: list[dict[str, Any]], args: argparse.Namespace
    ) -> None:
        self.ledger_id, self.keys, self.given, self.args = ledger_id, dict(keys), set(keys), args
        self.trusted = {t["seq"]: t for t in trusted}
        for t in trusted:  # a trusted checkpoint must itself be signed by a key the auditor gave
            f = t["fields"]
            message = {
                "domain": "retentiond-checkpoint-v1",
                "head_hash": f["covered_hash"],
                "ledger_id": f["ledger_id"],
            }
            message |= {"seq": f["covered_seq"], "time": f["signed_at"]}
            if f.get("from_seq") is not None:
                message |= {
                    "domain": "retentiond-checkpoint-v2",
                    "entry_hashes": f["entry_hashes"],
                    "from_seq": f["from_seq"],
                }
            key = self.keys.get(f["key_fingerprint"])
            if f["ledger_id"] != ledger_id:
                raise Failed(None, "malformed", "a trusted checkpoint of another ledger")
            if key is None or not good_signature(key, f["signature"], message):
                raise Failed(t["seq"], "bad_signature", "the trusted checkpoint's signature does not verify")
        self.n: int | None = None  # the seq expected next
        self.prev = sha256(("retentiond-ledger-v1|" + ledger_id).encode())
        self.hash_at: dict[int, bytes] = {}
        self.seq_of: dict[bytes, int] = {}
        self.current: str | None = None  # fingerprint of the key valid here
        self.periods: list[tuple[str, int]] = []
        self.last_cp: tuple[int, str] | None = None  # seq and time of the last valid checkpoint
        self.signed_to = 0  # every entry up to this seq is signed
        self.tail: list[tuple[int, str, str]] = []  # (seq, event, time) after it
        self.any_outcome = False

    def entry(self, e: dict[str, Any]) -> None:
        """Check one entry line against the chain, then its own rules (checkpoint, rotation)."""
        seq, prev, digest = e["seq"], bytes.fromhex(e["prev_hash"]), bytes.fromhex(e["hash"])
        if self.n is None:
            self.n, self.signed_to = seq, seq - 1
            if seq != 1:
                self.prev = prev  # a window starts from its first entry's link
            self.seq_of[self.prev] = seq - 1
        n = self.n
        body = {k: e[k] for k in ("batch_id", "category", "event", "fields", "refs", "run_id", "seq", "time")}
        intact = sha256(prev + jcs(body).encode()) == digest
        if seq != n:
            raise Failed(min(seq, n), "reordered" if seq < n else "deleted", f"seq {seq} where seq {n} was expected")
        if not intact or prev != self.prev:
            earlier = self.seq_of.get(prev)
            if earlier is not None and earlier < n - 1:
                raise Failed(
                    earlier + 1,
                    "inserted",
                    f"entries {earlier + 1}..{n - 1} are not in the chain seq {n} was written to",
                )
            if intact:
                raise Failed(n - 1, "modified", f"seq {n - 1} was rewritten (seq {n} chains from another entry)")
            raise Failed(n, "modified", "the entry does not hash to its stored hash")
        if e["event"] == "checkpoint":
            self.checkpoint(e)
        else:
            if e["event"] == "key_rotated":
                self.rotation(e)
            self.tail.append((n, e["event"], e["time"]))
            self.any_outcome |= e["event"] in OUTCOMES
        if n in self.trusted:
            self.against_trusted(self.trusted[n], digest)
        self.hash_at[n], self.seq_of[digest] = digest, n
        self.prev, self.n = digest, n + 1

    def signed_by_current(self, n: int, fp: str, signature: object, message: dict[str, Any], what: str) -> None:
        if fp not in self.keys:
            raise Failed(n, "bad_signature", f"{what} signed by unknown key {fp[:32]}")
        if self.current is None:
            self.current = fp
            self.periods.append((fp, n))
        elif fp != self.current:
            raise Failed(n, "key_not_valid", f"{what} signed by key {fp[:16]}, not the current key {self.current[:16]}")
        if not good_signature(self.keys[fp], signature, message):
            raise Failed(n, "bad_signature", f"{what} signature does not verify")

    def checkpoint(self, e: dict[str, Any], detached_end: int | None = None) -> None:
        n, f = e["seq"], e["fields"]
        message = {"domain": "retentiond-checkpoint-v1", "head_hash": f["covered_hash"], "ledger_id": f["ledger_id"]}
        message |= {"seq": f["covered_seq"], "time": f["signed_at"]}
        if f.get("from_seq") is not None:
            message |= {
                "domain": "retentiond-checkpoint-v2",
                "entry_hashes": f["entry_hashes"],
                "from_seq": f["from_seq"],
            }
        self.signed_by_current(n, f["key_fingerprint"], f["signature"], message, "checkpoint")
        if f["ledger_id"] != self.ledger_id or f["covered_seq"] != n - 1:
            raise Failed(n, "rolled_back_checkpoint", f"checkpoint signs seq {f['covered_seq']} of {f['ledger_id']}")
        listed = self.listed(f, n)
        if detached_end is not None:  # a window's covering checkpoint: it must list the window's last entry
            if listed.get(detached_end) != self.prev.hex():
                raise Failed(detached_end, "chain_rebuilt", f"the covering checkpoint does not list seq {detached_end}")
        elif f["covered_hash"] != self.prev.hex():
            changed = [s for s in sorted(listed) if s in self.hash_at and listed[s] != self.hash_at[s].hex()]
            first = changed[0] if changed else self.signed_to + 1
            raise Failed(first, "chain_rebuilt", f"seq {first} is not what the checkpoint at seq {n} signed")
        elif e["time"] != f["signed_at"]:
            raise Failed(n, "modified", "the checkpoint entry's time differs from its signed time")
        elif listed and any(s in self.hash_at and h != self.hash_at[s].hex() for s, h in listed.items() if s < n - 1):
            raise Failed(n, "malformed", "checkpoint entry_hashes differ from the entries it covers")
        self.last_cp, self.signed_to, self.tail = (n, e["time"]), n, []

    def listed(self, f: dict[str, Any], n: int) -> dict[int, str]:
        """Return seq -> hex hash of a v2 checkpoint's signed entry_hashes (empty for v1)."""
        if f.get("from_seq") is None:
            return {}
        first, hashes, last = f["from_seq"], f["entry_hashes"], f["covered_seq"]
        if not 1 <= first <= last or len(hashes) != 64 * (last - first + 1):
            raise Failed(n, "malformed", "checkpoint entry_hashes do not span from_seq..covered_seq")
        return {first + i: hashes[64 * i : 64 * i + 64] for i in range(last - first + 1)}

    def rotation(self, e: dict[str, Any]) -> None:
        n, f = e["seq"], e["fields"]
        new = Ed25519PublicKey.from_public_bytes(bytes.fromhex(f["new_public_key"]))
        if fingerprint(new) != f["new_fingerprint"]:
            raise Failed(n, "malformed", "key rotation: new_fingerprint is not the new key's")
        if f["ledger_id"] != self.ledger_id or f["covered_seq"] != n - 1 or f["covered_hash"] != self.prev.hex():
            raise Failed(n, "rolled_back_checkpoint", "key rotation made at another position")
        message = {"domain": "retentiond-key-rotation-v1", "head_hash": f["covered_hash"], "ledger_id": f["ledger_id"]}
        message |= {"new_public_key": f["new_public_key"], "old_fingerprint": f["old_fingerprint"]}
        message |= {"seq": f["covered_seq"], "time": f["rotated_at"]}
        if not good_signature(new, f["new_signature"], message):
            raise Failed(n, "bad_signature", "key rotation not signed by the new key")
        if f["old_signature"] is None:
            if f["new_fingerprint"] not in self.given:
                raise Failed(n, "bad_signature", "rotation without the old key to a key not given with --pubkey")
        else:
            self.signed_by_current(n, f["old_fingerprint"], f["old_signature"], message, "key rotation")
        self.keys[f["new_fingerprint"]] = new
        self.current = f["new_fingerprint"]
        self.periods.append((self.current, n))

    def against_trusted(self, t: dict[str, Any], digest: bytes) -> None:
        if bytes.fromhex(t["hash"]) == digest:
            return
        listed = self.listed(t["fields"], t["seq"])
        changed = [s for s in sorted(listed) if s in self.hash_at and listed[s] != self.hash_at[s].hex()]
        first = changed[0] if changed else t["seq"]
        raise Failed(first, "rolled_back", f"the ledger diverges from the trusted checkpoint at seq {first}")

    def finish(self, window: bool) -> str:
        last = (self.n or 1) - 1
        for seq in self.trusted:
            if seq > last and not window:
                raise Failed(last + 1, "truncated", f"the export ends at seq {last}, before trusted seq {seq}")
        status = ""
        if self.tail:
            first_outcome = next((s for s, ev, _ in self.tail if ev in OUTCOMES), None)
            times = [
                datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)  # noqa: UP017
                for _, _, t in self.tail
            ]
            now = datetime.now(timezone.utc)  # noqa: UP017 - runs on Python < 3.11 too
            age = timedelta(seconds=self.args.max_unsigned_age)
            young = now - min(times) <= age + GRACE and max(times) <= now + GRACE
            if self.last_cp is None and self.any_outcome:
                problem = Failed(
                    first_outcome or self.tail[0][0], "no_checkpoint", "outcome entries, and no checkpoint"
                )
            elif first_outcome is not None:
                problem = Failed(first_outcome, "unsigned_outcome", "an outcome entry no checkpoint covers")
            elif not young:
                problem = Failed(self.tail[0][0], "unsigned_tail", "entries no checkpoint covers, older than allowed")
            else:
                problem, status = None, " (young)"
            if problem is not None and not self.args.allow_unsigned_tail:
                raise problem
            status = status or " (ALLOWED: NOT covered by any signature)"
        cp = f"{self.last_cp[1]}@{self.last_cp[0]}" if self.last_cp else "none"
        key = self.current[:16] if self.current else "none"
        return (
            f"OK ledger={self.ledger_id} head_seq={last} head_hash={self.prev.hex()} last_checkpoint={cp} "
            f"unsigned_tail={len(self.tail)}{status} key={key} key_rotations={max(len(self.periods) - 1, 0)}"
        )


def verify(
    path: str, keys: dict[str, Any], trusted: list[dict[str, Any]], args: argparse.Namespace, chain: dict[int, str]
) -> str:
    """Verify the export at ``path``; fill ``chain`` with seq -> hash of every verified entry."""
    with open(path, encoding="utf-8") as lines:
        header = json.loads(lines.readline(), parse_float=no_float)
        if not isinstance(header, dict) or header.get("format") not in FORMATS:
            raise Failed(None, "malformed", "line 1 is not an export header")
        v = Verifier(header["ledger_id"], keys, trusted, args)
        last_seq, detached = header.get("last_seq"), None
        for number, line in enumerate(lines, start=2):
            if not line.strip():
                continue
            if detached is not None:
                raise Failed(detached["seq"], "malformed", "lines after the covering checkpoint")
            try:
                e = json.loads(line, parse_float=no_float, parse_constant=no_float)
            except ValueError as exc:
                raise Failed(v.n, "malformed", f"line {number}: {exc}") from None
            if v.n is None and header["format"].endswith("v2") and header.get("since") is None and e["seq"] != 1:
                raise Failed(1, "deleted", "an export from the beginning (no since) must start at seq 1")
            if v.n is None and header.get("first_seq") not in (None, e.get("seq")):
                raise Failed(e.get("seq"), "deleted", "the export does not start where its header says")
            if v.n is None and header.get("prev_hash") not in (None, e.get("prev_hash")):
                raise Failed(e.get("seq"), "modified", "the first entry's prev_hash differs from the header's")
            if last_seq is not None and v.n == last_seq + 1 and e["seq"] > v.n and e["event"] == "checkpoint":
                detached = e
                v.checkpoint(e, detached_end=last_seq)
                chain[e["seq"]] = e["hash"]
                continue
            try:
                v.entry(e)
            except (KeyError, TypeError, ValueError) as exc:
                raise Failed(v.n, "malformed", f"line {number}: {type(exc).__name__}: {exc}") from None
            chain[e["seq"]] = e["hash"]
    return v.finish(window=bool(header.get("until")))


def check_certificate(path: str, keys: dict[str, Any], chain: dict[int, str]) -> str:
    """Check one certificate of erasure against ``keys`` and the verified ``chain``; return its OK line."""
    with open(path, "rb") as f:
        cert = json.loads(f.read().decode("utf-8"), parse_float=no_float, parse_constant=no_float)
    if not isinstance(cert, dict) or cert.get("format") != CERTIFICATE_FORMAT:
        raise Failed(None, "certificate", f"{path}: not a {CERTIFICATE_FORMAT} document")
    key = keys.get(cert.get("key_fingerprint"))
    if key is None:
        raise Failed(None, "certificate", f"{path}: signed by a key that is not among the given public keys")
    if not good_signature(key, cert.get("signature"), {k: v for k, v in cert.items() if k != "signature"}):
        raise Failed(None, "certificate", f"{path}: signature does not match the certificate's content")
    cited = list(cert.get("entries") or []) + ([cert["checkpoint"]] if cert.get("checkpoint") else [])
    if not cert.get("checkpoint"):
        raise Failed(None, "certificate", f"{path}: no checkpoint covers the cited entries")
    for item in cited:
        if chain.get(item.get("seq")) != item.get("hash"):
            raise Failed(item.get("seq"), "certificate", f"{path}: not in the verified chain with the stated hash")
    return f"OK certificate {cert.get('request')}: signature and {len(cited)} cited entries verified"


def load_keys(paths: list[str]) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        with open(path, "rb") as f:
            pem = f.read()
        key: object
        if b"PRIVATE KEY" in pem:
            private = serialization.load_pem_private_key(pem, password=None)
            key = private.public_key() if isinstance(private, Ed25519PrivateKey) else None
        else:
            key = serialization.load_pem_public_key(pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path}: not an Ed25519 key")
        keys[fingerprint(key)] = key
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a retentiond audit-ledger export (JSON lines).")
    parser.add_argument("export")
    parser.add_argument("--pubkey", action="append", required=True, help="Ed25519 public key (PEM); repeatable")
    parser.add_argument("--trusted", action="append", default=[], help="a saved checkpoint entry or state file")
    parser.add_argument("--max-unsigned-age", type=float, default=3600.0, help="checkpoint_interval, in seconds")
    parser.add_argument("--allow-unsigned-tail", action="store_true")
    parser.add_argument("--certificate", action="append", default=[], help="a certificate of erasure to check too")
    args = parser.parse_args(argv)
    try:
        keys = load_keys(args.pubkey)
        trusted = []
        for path in args.trusted:
            with open(path, encoding="utf-8") as f:
                text = f.read().strip()
            try:
                data = json.loads(text)
            except ValueError:  # JSON lines: the last line is the checkpoint
                data = json.loads(text.splitlines()[-1])
            trusted.append(data.get("checkpoint", data))
    except (OSError, ValueError, IndexError) as exc:
        print(f"verify_ledger: {exc}", file=sys.stderr)
        return 2
    chain: dict[int, str] = {}
    try:
        print(verify(args.export, keys, trusted, args, chain))
        for path in args.certificate:
            print(check_certificate(path, keys, chain))
    except Failed as failure:
        print(f"FAILED {failure}")
        return 65
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"FAILED ledger: malformed: {type(exc).__name__}: {exc}")
        return 65
    return 0


if __name__ == "__main__":
    sys.exit(main())
