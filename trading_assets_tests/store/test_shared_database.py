"""share_database: inside a run every connection is a cursor on one open database; it is closed when
idle (so another process can read) and when the sharing ends (so the data is in the file)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

import polars as pl

from trading_assets.store import warehouse as wmod
from trading_assets.store.warehouse import Warehouse, share_database, unshare_database

READ_IN_OTHER_PROCESS = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
    "print(con.execute('SELECT count(*) FROM provider_metrics').fetchone()[0])"
)


def _other_process_count(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", READ_IN_OTHER_PROCESS, str(path)], capture_output=True, text=True, timeout=60)


def _metric_rows(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"ts": [datetime(2025, 1, 2, 18)] * n, "provider": [f"p{i}" for i in range(n)], "success": [True] * n}
    )


def test_connections_share_one_database_and_release_it_when_idle(tmp_path):
    path = tmp_path / "trading.duckdb"
    wh = Warehouse(path, lock_timeout_s=5)
    wh.ensure_schema()
    share_database(path, idle_close_s=0.2)
    try:
        shared = wmod._SHARED[path.resolve()]
        with wh.connect() as a, wh.connect(read_only=True) as b:
            assert shared._db is not None and shared._active == 2
            a.execute("CREATE TEMP TABLE t AS SELECT 1 AS x")  # temp objects are per connection: two cursors
            assert b.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 't'").fetchone()[0] == 0
            # while the run's database is open, another process cannot open the file
            blocked = _other_process_count(path)
            assert blocked.returncode != 0 and "lock" in blocked.stderr.lower()
        wh.append("provider_metrics", _metric_rows(3))
        assert shared._db is not None  # kept open for the next step's connection...
        time.sleep(0.6)
        assert shared._db is None  # ...and closed once idle: a reader in another process gets in
        reader = _other_process_count(path)
        assert reader.returncode == 0, reader.stderr
        assert reader.stdout.strip() == "3"
        # the schema is ensured once per sharing
        wh.ensure_schema()
        assert shared.schema_ensured
    finally:
        unshare_database(path)
    assert path.resolve() not in wmod._SHARED


def test_unshare_closes_the_database_and_nested_shares_are_counted(tmp_path):
    path = tmp_path / "trading.duckdb"
    wh = Warehouse(path, lock_timeout_s=5)
    wh.ensure_schema()
    share_database(path, idle_close_s=60)
    share_database(path, idle_close_s=60)
    wh.append("provider_metrics", _metric_rows(2))
    unshare_database(path)
    assert wmod._SHARED[path.resolve()]._db is not None  # one user left: still open
    unshare_database(path)
    assert path.resolve() not in wmod._SHARED
    reader = _other_process_count(path)  # closed at once (not after 60 s): the file is free and complete
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout.strip() == "2"


def test_a_connection_racing_the_end_of_the_sharing_opens_the_file_on_its_own(tmp_path):
    """connect() took the shared object just before unshare_database closed it: the connection must not
    reopen the stopped shared database (nothing would close it again): it opens the file on its own."""
    wh = Warehouse(tmp_path / "w.duckdb")
    wh.ensure_schema()
    share_database(wh.db_path)
    key = wmod._shared_key(wh.db_path)
    shared = wmod._SHARED[key]
    with wh.connect() as con:
        con.execute("SELECT 1")
    unshare_database(wh.db_path)
    wmod._SHARED[key] = shared  # the stale reference the race leaves in connect()
    try:
        with wh.connect() as con:
            assert con.execute("SELECT 42").fetchone()[0] == 42
        assert shared._db is None  # not reopened
    finally:
        wmod._SHARED.pop(key, None)
    # and the file is free: another process can open it read-write
    out = subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(wh.db_path)!r}).close(); print('ok')"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
