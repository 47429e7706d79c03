"""The package as an operator gets it: pyproject metadata, the lock files, the built sdist and wheel,
and the wheel installed into a fresh venv (``--require-hashes`` from requirements.lock, then the
wheel alone) running ``--version``, ``config validate`` on the shipped config, ``install-unit``
(checked by ``systemd-analyze verify``), the unit's reload check against real stores, and a
daemon run under the kernel's equivalent of ``MemoryDenyWriteExecute=yes``.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
import tomllib
import venv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retentiond import __version__

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
# Run a command with PR_SET_MDWE(PR_MDWE_REFUSE_EXEC_GAIN): the kernel refuses writable+executable
# mappings to it and every child, as systemd's MemoryDenyWriteExecute=yes does with seccomp.
MDWE_EXEC = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:
    sys.stderr.write("PR_SET_MDWE: " + os.strerror(ctypes.get_errno()) + "\\n")
    sys.exit(97)
os.execv(sys.argv[1], sys.argv[1:])
"""
MDWE_UNSUPPORTED = 97


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """Return ``{canonical name: (version, number of hashes)}`` of a ``uv pip compile`` lock file."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if found := re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line):
            name = canonicalize_name(found.group(1))
            pins[name] = (found.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and name:
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def unmet(requirements: Sequence[str], pins: dict[str, tuple[str, int]]) -> list[str]:
    """Return the requirements (for Python 3.11 on Linux) the pins leave missing or out of range."""
    out = []
    env = {"python_version": "3.11", "sys_platform": "linux", "extra": ""}
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        pin = pins.get(canonicalize_name(req.name))
        if pin is None or not req.specifier.contains(pin[0], prereleases=True):
            out.append(f"{text} (locked: {pin[0] if pin else 'missing'})")
    return out


class TestProjectMetadata:
    """pyproject.toml declares the licence the PEP 639 way and ships files that exist."""

    def test_license_is_an_spdx_expression_with_its_file(self) -> None:
        """license = "Apache-2.0", license-files = ["LICENSE"] (the Apache 2.0 text), no licence classifier."""
        project = PYPROJECT["project"]
        text = (REPO / "LICENSE").read_text(encoding="utf-8")
        classifiers = [c for c in project.get("classifiers", []) if c.startswith("License ::")]
        assert ("Apache-2.0", ["LICENSE"], True, True, []) == (
            project["license"],
            project["license-files"],
            "Apache License\n                           Version 2.0, January 2004" in text,
            "END OF TERMS AND CONDITIONS" in text,
            classifiers,
        )

    def test_build_requires_a_setuptools_with_pep_639(self) -> None:
        """setuptools >= 77 (the first with license expressions and license-files) is the build requirement."""
        (setuptools,) = [Requirement(r) for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
        assert (False, True) == (setuptools.specifier.contains("76.9"), setuptools.specifier.contains("77.0"))

    def test_every_data_file_pattern_matches(self) -> None:
        """Each pattern of [tool.setuptools.data-files] names at least one file of the repository."""
        patterns = [p for ps in PYPROJECT["tool"]["setuptools"]["data-files"].values() for p in ps]
        assert [] == [p for p in patterns if not list(REPO.glob(p))]


class TestLockFiles:
    """requirements.lock and requirements-test.lock pin every dependency, with hashes (`make lock`)."""

    def test_runtime_lock_satisfies_the_dependencies(self) -> None:
        """Every runtime dependency is pinned in requirements.lock within its range."""
        assert [] == unmet(PYPROJECT["project"]["dependencies"], locked(REPO / "requirements.lock")), (
            "requirements.lock is stale: run `make lock`"
        )

    def test_test_lock_satisfies_the_test_environment(self) -> None:
        """Runtime, test-extra and build requirements are pinned in requirements-test.lock within their ranges."""
        wanted = [
            *PYPROJECT["project"]["dependencies"],
            *PYPROJECT["project"]["optional-dependencies"]["test"],
            "build",
        ]
        assert [] == unmet(wanted, locked(REPO / "requirements-test.lock")), (
            "requirements-test.lock is stale: run `make lock`"
        )

    def test_every_pin_has_a_hash(self) -> None:
        """Each pinned package of both locks carries at least one sha256 (pip --require-hashes)."""
        unhashed = [
            f"{lock}: {name}"
            for lock in ("requirements.lock", "requirements-test.lock")
            for name, (_, hashes) in locked(REPO / lock).items()
            if hashes == 0
        ]
        assert [] == unhashed

    def test_runtime_lock_is_the_test_lock_restricted(self) -> None:
        """A package in both locks has one version: the tests run what operators install."""
        runtime, test = locked(REPO / "requirements.lock"), locked(REPO / "requirements-test.lock")
        assert {} == {n: (v, test[n][0]) for n, (v, _) in runtime.items() if n in test and test[n][0] != v}


@dataclass(frozen=True)
class Built:
    """The sdist and wheel ``python -m build`` made, and what it printed."""

    sdist: Path
    wheel: Path
    output: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Build the sdist, then the wheel from it (what `make dist` runs)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert 0 == result.returncode, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("retentiond-*.tar.gz")
    (wheel,) = out.glob("retentiond-*.whl")
    return Built(sdist, wheel, result.stdout + result.stderr)


@pytest.mark.slow
class TestBuild:
    """`python -m build` makes an sdist and a wheel that carry the unit, the example config and the docs."""

    def test_no_deprecation_or_manifest_warning(self, built: Built) -> None:
        """The build prints no deprecation warning and MANIFEST.in names no missing file."""
        noisy = [
            line
            for line in built.output.splitlines()
            if "deprecat" in line.lower() or "no files found matching" in line
        ]
        assert [] == noisy

    def test_sdist_carries_what_a_packager_needs(self, built: Built) -> None:
        """LICENSE, the systemd files, the example config, the docs, the locks and the tests are in the sdist."""
        with tarfile.open(built.sdist) as tar:
            names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        wanted = {
            "LICENSE",
            "README.md",
            "CHANGELOG.md",
            "requirements.lock",
            "requirements-test.lock",
            "deploy/systemd/retentiond.service",
            "deploy/systemd/retentiond.sysusers",
            "deploy/systemd/retentiond.tmpfiles",
            "config/retention.toml",
            "config/holds.toml",
            "docs/operations.md",
            "tests/test_packaging.py",
            "tools/check_module_size.py",
        }
        assert set() == wanted - names

    def test_wheel_installs_the_shipped_files_as_data(self, built: Built) -> None:
        """The wheel's data holds the systemd files, the example config and every doc; dist-info the licence."""
        data = f"retentiond-{__version__}.data/data/"
        with zipfile.ZipFile(built.wheel) as whl:
            names = set(whl.namelist())
            metadata = whl.read(f"retentiond-{__version__}.dist-info/METADATA").decode()
        docs = {f"share/doc/retentiond/docs/{p.name}" for p in (REPO / "docs").iterdir() if p.suffix in (".md", ".txt")}
        wanted = {
            "share/retentiond/systemd/retentiond.service",
            "share/retentiond/systemd/retentiond.sysusers",
            "share/retentiond/systemd/retentiond.tmpfiles",
            "share/retentiond/config/retention.toml",
            "share/retentiond/config/holds.toml",
            "share/retentiond/prometheus/retentiond-rules.yml",
            "share/retentiond/grafana/retentiond.json",
            "share/doc/retentiond/README.md",
            "share/doc/retentiond/LICENSE",
            *docs,
        }
        assert (set(), True, True) == (
            {data + w for w in wanted} - names,
            f"retentiond-{__version__}.dist-info/licenses/LICENSE" in names,
            "License-Expression: Apache-2.0" in metadata.splitlines(),
        )


@dataclass(frozen=True)
class Installed:
    """A fresh venv with the built wheel installed the way docs/operations.md says."""

    root: Path
    mdwe: bool  # commands run with PR_SET_MDWE (False: this kernel lacks it)

    @property
    def exe(self) -> Path:
        """Return the venv's ``retentiond`` console script."""
        return self.root / "bin" / "retentiond"

    @property
    def share(self) -> Path:
        """Return ``<venv>/share/retentiond``."""
        return self.root / "share" / "retentiond"

    def command(self, args: Sequence[str]) -> list[str]:
        """Return ``args`` wrapped to run under PR_SET_MDWE where the kernel has it."""
        return [sys.executable, "-c", MDWE_EXEC, *args] if self.mdwe else list(args)

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run the installed ``retentiond ARGS`` (outside the checkout, so nothing imports from it)."""
        return subprocess.run(
            self.command([str(self.exe), *args]),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=self.root,
            env=clean_env(env),
        )


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Return this environment without what would make the child import the checkout or talk to systemd."""
    drop = ("PYTHONPATH", "RETENTIOND_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra or {})
    return env


def mdwe_supported() -> bool:
    """Return whether this kernel has PR_SET_MDWE (Linux >= 6.3)."""
    probe = subprocess.run([sys.executable, "-c", MDWE_EXEC, "/bin/true"], capture_output=True, check=False)
    return probe.returncode != MDWE_UNSUPPORTED


@pytest.fixture(scope="module")
def installed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A fresh venv: the runtime lock with --require-hashes, then the wheel alone (--no-deps)."""
    root = tmp_path_factory.mktemp("venv") / "retentiond"
    venv.EnvBuilder(with_pip=True).create(root)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for args in (["--require-hashes", "-r", str(REPO / "requirements.lock")], ["--no-deps", str(built.wheel)]):
        result = subprocess.run([*pip, *args], capture_output=True, text=True, check=False, timeout=600)
        assert 0 == result.returncode, result.stderr[-3000:]
    return Installed(root, mdwe_supported())


@pytest.mark.slow
class TestInstalledWheel:
    """The wheel in a fresh venv works without the checkout."""

    def test_memory_deny_write_execute_is_enforced(self, installed: Installed) -> None:
        """Under the wrapper a writable+executable mapping is refused, so the tests below are meaningful."""
        if not installed.mdwe:
            pytest.skip("kernel without PR_SET_MDWE (< 6.3): MemoryDenyWriteExecute=yes is not exercised here")
        probe = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
        result = subprocess.run(
            installed.command([str(installed.root / "bin" / "python"), "-c", probe]),
            capture_output=True,
            text=True,
            check=False,
        )
        assert (1, True) == (result.returncode, "PermissionError" in result.stderr)

    def test_version(self, installed: Installed) -> None:
        """`retentiond --version` prints the package version."""
        result = installed.run("--version")
        assert (0, f"retentiond, version {__version__}") == (result.returncode, result.stdout.strip())

    def test_imports_the_installed_package(self, installed: Installed) -> None:
        """The venv's python imports retentiond from its own site-packages, not from the checkout."""
        result = subprocess.run(
            [str(installed.root / "bin" / "python"), "-c", "import retentiond; print(retentiond.__file__)"],
            capture_output=True,
            text=True,
            check=False,
            cwd=installed.root,
            env=clean_env(),
        )
        assert str(installed.root) in result.stdout, result.stderr

    def test_shipped_config_validates(self, installed: Installed) -> None:
        """`config validate` accepts the example config and holds file installed in share/retentiond/config."""
        config = installed.share / "config"
        result = installed.run("-c", str(config / "retention.toml"), "config", "validate")
        first = f"{config / 'retention.toml'}: valid (13 categories, 2 holds in {config / 'holds.toml'})"
        assert (0, first) == (result.returncode, result.stdout.splitlines()[0] if result.stdout else ""), result.stderr

    def test_install_unit_names_this_installation(self, installed: Installed, tmp_path: Path) -> None:
        """install-unit writes a unit whose ExecStart runs the venv's retentiond and whose Documentation= exists."""
        result = installed.run("install-unit", "--prefix", str(tmp_path))
        unit = (tmp_path / "systemd" / "system" / "retentiond.service").read_text(encoding="utf-8")
        (doc,) = re.findall(r"^Documentation=file://(\S+)$", unit, flags=re.M)
        exec_start = re.findall(r"^ExecStart=(\S+)", unit, flags=re.M)
        assert (0, [str(installed.exe)], installed.root / "share/doc/retentiond/docs/operations.md", True) == (
            result.returncode,
            exec_start,
            Path(doc),
            Path(doc).is_file(),
        ), result.stderr

    @pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
    def test_installed_unit_verifies(self, installed: Installed, tmp_path: Path) -> None:
        """`systemd-analyze verify` on the unit install-unit wrote reports nothing."""
        assert 0 == installed.run("install-unit", "--prefix", str(tmp_path)).returncode
        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / "systemd" / "system" / "retentiond.service")],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert (0, "") == (result.returncode, result.stderr.strip())


def reload_check(unit: Path, config: Path) -> list[str]:
    """Return the unit's first ExecReload= command (the validation) with ``config`` for the shipped path."""
    lines = unit.read_text(encoding="utf-8").splitlines()
    line = next(text for text in lines if text.startswith("ExecReload="))
    return [config.as_posix() if w == "/etc/retentiond/retention.toml" else w for w in shlex.split(line[11:])]


@pytest.fixture
def shipped_site(installed: Installed, tmp_path: Path, pg_url: str, s3_endpoint: str) -> dict[str, str]:
    """The installed example config on real stores: the demo schema in a fresh PostgreSQL database,
    its buckets in moto, the audit keys as systemd credentials. Returns the environment to run with."""
    from demo import schema
    from demo.s3_seed import BUCKETS

    engine = sa.create_engine(pg_url)
    schema.metadata.create_all(engine)
    engine.dispose()
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    for bucket in BUCKETS:
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for name in ("retention.toml", "holds.toml"):
        text = (installed.share / "config" / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("/var/lib/retentiond", str(tmp_path / "state")), encoding="utf-8")
    credentials = tmp_path / "credentials"
    keys = installed.run("audit", "keygen", "--out-dir", str(tmp_path / "keys"))
    assert 0 == keys.returncode, keys.stderr
    credentials.mkdir()
    shutil.copy(tmp_path / "keys" / "audit-signing.pem", credentials / "audit-signing")
    (credentials / "audit-hmac").write_text(secrets.token_hex(32), encoding="utf-8")
    return {
        "CREDENTIALS_DIRECTORY": str(credentials),
        "RETENTIOND_APP_DB_URL": pg_url,
        "RETENTIOND_S3_ENDPOINT": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


@pytest.mark.slow
class TestReloadCheck:
    """The unit's validation command (ExecReload's first line: what stands in for an ExecStartPre) from the wheel."""

    def test_passes_on_the_shipped_config(
        self, installed: Installed, shipped_site: dict[str, str], tmp_path: Path
    ) -> None:
        """`config validate --connect` on the example config against its schema and buckets exits 0."""
        assert 0 == installed.run("install-unit", "--prefix", str(tmp_path / "units")).returncode
        command = reload_check(tmp_path / "units/systemd/system/retentiond.service", tmp_path / "retention.toml")
        result = subprocess.run(
            installed.command(command),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
            env=clean_env(shipped_site),
        )
        assert (0, str(installed.exe), "--connect") == (result.returncode, command[0], command[-1]), (
            result.stdout[-2000:] + result.stderr[-2000:]
        )

    def test_fails_with_78_when_a_table_is_missing(
        self, installed: Installed, shipped_site: dict[str, str], tmp_path: Path, pg_url: str
    ) -> None:
        """The same command refuses the config (exit 78, no reload) when a target table is gone."""
        engine = sa.create_engine(pg_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE page_events CASCADE"))
        engine.dispose()
        assert 0 == installed.run("install-unit", "--prefix", str(tmp_path / "units")).returncode
        command = reload_check(tmp_path / "units/systemd/system/retentiond.service", tmp_path / "retention.toml")
        result = subprocess.run(
            installed.command(command),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
            env=clean_env(shipped_site),
        )
        assert (78, True) == (result.returncode, "page_events" in result.stderr), result.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
class TestInstalledDaemon:
    """The wheel's daemon runs a category end to end under MemoryDenyWriteExecute's kernel equivalent."""

    def test_ready_runs_and_stops(self, installed: Installed, tmp_path: Path) -> None:
        """READY=1, a catch-up run that deletes the expired rows and signs a checkpoint, then SIGTERM exits 0."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with sqlite3.connect(tmp_path / "app.db") as db:
            db.execute("CREATE TABLE clicks (id INTEGER PRIMARY KEY, created_at TIMESTAMP, account_id TEXT)")
            db.executemany(
                "INSERT INTO clicks (created_at, account_id) VALUES (?, ?)",
                [((now - timedelta(days=40 if i < 20 else 1)).isoformat(sep=" "), f"acct_{i % 3}") for i in range(25)],
            )
        keys = installed.run("audit", "keygen", "--out-dir", str(tmp_path / "keys"))
        assert 0 == keys.returncode, keys.stderr
        (tmp_path / "keys" / "hmac.key").write_text(secrets.token_hex(32), encoding="utf-8")
        (tmp_path / "holds.toml").write_text("# no holds\n", encoding="utf-8")
        (tmp_path / "retention.toml").write_text(
            f"""[daemon]
state_dir = "state"
holds_file = "holds.toml"
metrics_listen = "127.0.0.1:{_free_port()}"
max_fraction_per_run = 1.0

[audit]
hmac_key_file = "keys/hmac.key"
signing_key_file = "keys/audit-signing.pem"

[stores.app]
kind = "sql"
url = "sqlite:///{tmp_path / "app.db"}"

[categories.clicks]
retain = "30d"
action = "delete"
  [[categories.clicks.sql]]
  store = "app"
  table = "clicks"
  key = ["id"]
  age_column = "created_at"
  age_timezone = "UTC"
  subject_column = "account_id"
""",
            encoding="utf-8",
        )
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(1.0)
        messages: list[str] = []
        with open(tmp_path / "daemon.log", "wb") as log:
            proc = subprocess.Popen(
                installed.command([str(installed.exe), "-c", str(tmp_path / "retention.toml"), "daemon"]),
                env=clean_env({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            deadline = time.monotonic() + 60
            while not any("last=clicks:" in m for m in messages) and time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                try:
                    messages.append(notify.recv(65536).decode())
                except TimeoutError:
                    continue
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            notify.close()
        with sqlite3.connect(tmp_path / "app.db") as db:
            left = db.execute("SELECT count(*) FROM clicks").fetchone()[0]
        log_text = (tmp_path / "daemon.log").read_text(encoding="utf-8", errors="replace")
        assert (True, True, 5, 0) == (
            any("READY=1" in m for m in messages),
            any("last=clicks:success" in m for m in messages),
            left,
            code,
        ), log_text[-3000:]
