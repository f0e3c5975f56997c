"""Fixtures of the operations suite: real processes (trading-cycle, dagster dev, PostgreSQL), each in a
temporary folder, each stopped at the end.

Every fixture here keeps the developer's data/ folder untouched: TRADING_DATA_DIR and DAGSTER_HOME
point into pytest's tmp folders, and `dagster dev` runs with a temporary working directory so the
project's .env is not loaded (a test instance stays in its tmp folder).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from trading_assets.domain import calendar
from trading_assets.settings import PROJECT_ROOT

VENV_BIN = Path(sys.executable).parent
SYMBOLS = ["AAPL", "MSFT", "JPM"]
# History starts here in every ops test: short ranges keep each run a few seconds.
HISTORY_START = date(2024, 1, 2)
RUN_CONFIG = {"resources": {"pipeline": {"config": {"symbols": SYMBOLS}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(data_dir: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update(
        TRADING_DATA_DIR=str(data_dir),
        TRADING_HISTORY_START=HISTORY_START.isoformat(),
        TRADING_PROVIDERS="synthetic",
        DAGSTER_HOME=str(home),
        DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS="true",
        DAGSTER_EVENT_BATCH_SIZE="1000",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def make_home(path: Path, config: Path = PROJECT_ROOT / "dagster.yaml") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config, path / "dagster.yaml")
    return path


def run_cli(args: list[str], env: dict[str, str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "trading-cycle"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["TRADING_DATA_DIR"]
    )


def sessions_from(start: date, n: int) -> list[date]:
    days = calendar.sessions(start, date(start.year + 1, 12, 31))
    return days[:n]


# --- dagster dev --------------------------------------------------------------------------------
class DagsterDev:
    """`dagster dev` (webserver + daemon) on a free loopback port with its own DAGSTER_HOME."""

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.home = make_home(root / "dagster_home")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = base_env(self.data_dir, self.home)
        self.log = open(root / "dagster_dev.log", "w")
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> "DagsterDev":
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "dagster"), "dev", "-m", "trading_assets.definitions", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=self.root,  # not the repo root: nothing of a test lands there
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
            # dagster dev ignores SIGINT/SIGTERM when started from a script unless SIGINT is reset (DESIGN section 9)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                data = self.graphql("{ repositoriesOrError { __typename ... on RepositoryConnection { nodes { name } } } }")
                if data["repositoriesOrError"]["__typename"] == "RepositoryConnection" and data["repositoriesOrError"]["nodes"]:
                    return self
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
            time.sleep(1)
        raise RuntimeError(f"dagster dev did not load the code location in {timeout} s:\n{self.tail()}")

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # the server's message says what was wrong with the query
            raise ValueError(f"GraphQL HTTP {exc.code}: {exc.read()[:3000]!r}") from exc
        if body.get("errors"):
            raise ValueError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def tail(self, n: int = 60) -> str:
        self.log.flush()
        return "\n".join((self.root / "dagster_dev.log").read_text().splitlines()[-n:])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        # code servers and run workers of the group that outlived dagster dev
        if self.proc:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


@pytest.fixture(scope="session")
def dagster_dev(tmp_path_factory):
    server = DagsterDev(tmp_path_factory.mktemp("dagster_dev"))
    try:
        yield server.start()
    finally:
        server.stop()


# --- PostgreSQL -----------------------------------------------------------------------------------
def postgres_bin() -> Path | None:
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/bin", "/usr/bin"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
                return Path(d)
    return None


class PostgresServer:
    """A throw-away PostgreSQL cluster: initdb into a temporary folder, pg_ctl on a free loopback port.

    PostgreSQL refuses to run as root; as root the cluster belongs to (and runs as) the `postgres`
    user that Debian's package creates.
    """

    def __init__(self, bindir: Path):
        self.bindir = bindir
        # directly under /tmp: as root, pytest's tmp folders (mode 0700) are not reachable by `postgres`
        self.root = Path(tempfile.mkdtemp(prefix="trading_pg_"))
        self.pgdata = self.root / "pgdata"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://dagster@127.0.0.1:{self.port}/dagster"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=timeout, check=True, cwd=self.root)

    def start(self) -> "PostgresServer":
        self._run(str(self.bindir / "initdb"), "-D", str(self.pgdata), "-U", "dagster", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.root / "pg.log"), "-o", opts, "-w", "start")
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="dagster", dbname="postgres")
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("CREATE DATABASE dagster")
        con.close()
        return self

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "stop", timeout=60)
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are absent: apt-get install postgresql (.ci/run does)")
    server = PostgresServer(bindir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
