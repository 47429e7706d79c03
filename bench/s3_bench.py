"""S3 engine benchmark (prints figures; not a test).

10,000 objects, a quarter of them with 2 prior versions (15,000 versions), in a versioned
bucket on a moto server, twice (two identical buckets). Then, in one run:

* **raw**: a boto3 loop, one thread — ListObjectVersions pages, then DeleteObjects batches of
  1,000 by VersionId; listing and deleting timed separately;
* **retentiond**: ``retentiond run`` (the Runner of ``retentiond run --allow-large``) on the
  other bucket, in a child process (so its peak RSS is its own), with holds, per-version
  decisions, the intent journal and the audit ledger (every deleted version's ref); listing
  (the plan's pass, spooled) and deleting timed separately.

Each side has its own moto server process with only its own bucket (moto's ListObjectVersions
deep-copies every version of the bucket per page, and Python's garbage collector walks the whole
heap: a bucket shared, or one side's garbage, would slow the other). Objects are
written "now", so the retentiond run is given a ``run_start`` 2 days ahead with ``retain = 1d``:
everything is expired, as it is for the raw loop.

    PYTHONPATH=. python bench/s3_bench.py [--objects 10000] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """Start a moto server in a child process; return it and its endpoint."""
    port = _free_port()
    code = (
        "import logging, time; logging.getLogger('werkzeug').setLevel(logging.ERROR);"
        "from moto.server import ThreadedMotoServer;"
        f"s = ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False); s.start();"
        "time.sleep(10**6)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return proc, endpoint
        except OSError:
            time.sleep(0.05)
    raise SystemExit("moto server did not start")


def client(endpoint: str) -> Any:
    """Return a boto3 client on the moto server."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 5}),
    )


def seed(endpoint: str, bucket: str, objects: int) -> int:
    """Create ``bucket`` (versioned) with ``objects`` keys, every 4th with 2 prior versions; return versions."""
    c = client(endpoint)
    c.create_bucket(Bucket=bucket)
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def put(i: int) -> int:
        key = f"data/{i % 100:02d}/object-{i:06d}.bin"
        n = 3 if i % 4 == 0 else 1
        for _ in range(n):
            c.put_object(Bucket=bucket, Key=key, Body=b"x" * 64)
        return n

    with ThreadPoolExecutor(16) as pool:
        return sum(pool.map(put, range(objects)))


def raw_loop(endpoint: str, bucket: str) -> dict[str, float]:
    """List every version (one thread), then delete them by VersionId in batches of 1,000; return timings."""
    c = client(endpoint)
    started = time.perf_counter()
    items: list[dict[str, str]] = []
    for page in c.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix="data/", PaginationConfig={"PageSize": 1000}
    ):
        items += [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
    listed = time.perf_counter()
    for i in range(0, len(items), 1000):
        response = c.delete_objects(Bucket=bucket, Delete={"Objects": items[i : i + 1000], "Quiet": True})
        assert not response.get("Errors"), response.get("Errors")
    done = time.perf_counter()
    return {"versions": len(items), "list_s": listed - started, "delete_s": done - listed, "total_s": done - started}


def child(config: str, now: str) -> None:
    """Run retentiond on the config with ``run_start = now``; print timings and peak RSS as JSON."""
    from retentiond.actions.run import Runner
    from retentiond.config.loader import load_config
    from retentiond.stores.s3 import worker

    timings = {"list_s": 0.0, "delete_s": 0.0}
    counts_fn = worker.S3Worker.counts
    send_fn = worker.S3Worker._send_all
    first = {"done": False}

    def counts(self: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return counts_fn(self, *args, **kwargs)
        finally:
            if not first["done"]:  # the first call lists and spools; later ones re-read the spool
                timings["list_s"] += time.perf_counter() - t
                first["done"] = True

    def send_all(self: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return send_fn(self, *args, **kwargs)
        finally:
            timings["delete_s"] += time.perf_counter() - t

    worker.S3Worker.counts = counts  # type: ignore[method-assign]
    worker.S3Worker._send_all = send_all  # type: ignore[method-assign]
    started = time.perf_counter()
    report = Runner(load_config(Path(config)), mode="run", allow_large=True, now=datetime.fromisoformat(now)).execute()
    total = time.perf_counter() - started
    target = report.targets[0]
    print(
        json.dumps(
            {
                "versions": target.acted + target.prior_versions_deleted,
                "failed": report.failed,
                "total_s": total,
                **timings,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


def main() -> None:
    """Seed, run both sides, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--retentiond-first", action="store_true", help="run retentiond before the raw loop (order effects)"
    )
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "NOW"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc_raw, endpoint_raw = start_moto()
    proc, endpoint = start_moto()
    try:
        t = time.perf_counter()
        n_raw = seed(endpoint_raw, "bench-raw", args.objects)
        n_rtd = seed(endpoint, "bench-rtd", args.objects)
        print(f"seeded 2 x {n_raw} versions ({args.objects} objects) in {time.perf_counter() - t:.1f}s", flush=True)
        assert n_raw == n_rtd
        raw = {} if args.retentiond_first else raw_loop(endpoint_raw, "bench-raw")
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            from retentiond.audit.signing import generate_key_pair
            from retentiond.cli.render import toml_like

            (d / "hmac.key").write_text(secrets.token_hex(32))
            (d / "signing.pem").write_bytes(generate_key_pair()[0])
            os.chmod(d / "signing.pem", 0o600)
            (d / "holds.toml").write_text(
                '[[hold]]\nid = "LIT-BENCH"\nkind = "legal"\nreason = "bench"\nplaced_by = "bench"\n'
                "placed_at = 2020-01-01\n"
                'categories = ["bench"]\nsubjects = ["nobody"]\n'
            )
            config = {
                "daemon": {
                    "state_dir": str(d / "state"),
                    "holds_file": str(d / "holds.toml"),
                    "metrics_listen": "",
                    "batch_size": 1000,
                    "max_fraction_per_run": 1.0,
                },
                "audit": {"hmac_key_file": str(d / "hmac.key"), "signing_key_file": str(d / "signing.pem")},
                "stores": {
                    "files": {
                        "kind": "s3",
                        "endpoint_url": endpoint,
                        "region": "us-east-1",
                        "max_workers": args.workers,
                    }
                },
                "categories": {
                    "bench": {
                        "retain": "1d",
                        "action": "delete",
                        "s3": [
                            {
                                "store": "files",
                                "bucket": "bench-rtd",
                                "prefix": "data/",
                                "subject_pattern": "^data/(?P<subject>[^/]+)/",
                            }
                        ],
                    }
                },
            }
            (d / "retention.toml").write_text(toml_like(config))
            now = (datetime.now(UTC) + timedelta(days=2)).isoformat()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(d / "retention.toml"), now],
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                check=True,
            )
            rtd = json.loads(out.stdout.strip().splitlines()[-1])
        if args.retentiond_first:
            raw = raw_loop(endpoint_raw, "bench-raw")
        left = client(endpoint).list_object_versions(Bucket="bench-rtd", MaxKeys=10).get("Versions", [])
    finally:
        for p in (proc, proc_raw):
            p.terminate()
            p.wait(timeout=10)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    print(
        f"{'':12} {'versions':>8} {'list s':>8} {'list v/s':>9} {'delete s':>9} {'delete v/s':>11} "
        f"{'total s':>8} {'total v/s':>10}"
    )
    for name, r in (("raw boto3", raw), ("retentiond", rtd)):
        print(
            f"{name:12} {r['versions']:>8} {r['list_s']:>8.2f} {r['versions'] / r['list_s']:>9.0f} "
            f"{r['delete_s']:>9.2f} {r['versions'] / r['delete_s']:>11.0f} "
            f"{r['total_s']:>8.2f} {r['versions'] / r['total_s']:>10.0f}"
        )
    ratio = (rtd["versions"] / rtd["total_s"]) / (raw["versions"] / raw["total_s"])
    print(f"retentiond / raw (versions/s, end to end): {ratio:.2f}x   target >= 1.0x")
    print(f"retentiond peak RSS: {rtd['peak_rss_mb']:.0f} MB   target <= 200 MB")
    print(f"left in the retentiond bucket: {len(left)} versions; failed categories: {rtd['failed'] or 'none'}")


if __name__ == "__main__":
    main()
