"""Guarantee 4: concurrent runs and readers.

trading_assets_tests/ops/test_queue.py proves the run queue of a `dagster dev` instance (a second run
waits QUEUED). Here: two `trading-cycle` processes started at once on one DAGSTER_HOME and one
warehouse, and `trading-cycle explain` while a write run is in progress."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from trading_assets_tests.reliability.conftest import (
    APPEND_ONLY,
    SHORT,
    VENV_BIN,
    cli_args,
    cli_env,
    cli_popen,
    run_graph,
    table_hashes,
)

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "WarehouseLockedError", "locked by another writing process")


def _run_records(home):
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            return sorted(instance.get_run_records(), key=lambda r: r.create_timestamp)
    finally:
        os.environ.pop("DAGSTER_HOME", None) if saved is None else os.environ.__setitem__("DAGSTER_HOME", saved)


@pytest.fixture(scope="module")
def two_at_once(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_at_once")
    env = cli_env(root)
    # A fresh DAGSTER_HOME is initialized first: two processes creating its SQLite schema at the same time
    # race in Dagster's alembic stamp (UNIQUE constraint failed: alembic_version), measured here.
    assert _run_records(root / "home") == []
    procs = [cli_popen(cli_args(SHORT[0], SHORT[-1]), env, root / f"run{i}.log") for i in range(2)]
    codes = [p.wait(600) for p in procs]
    return {"root": root, "codes": codes, "logs": [(root / f"run{i}.log").read_text() for i in range(2)]}


@pytest.mark.slow
def test_two_cli_runs_at_once_both_succeed_without_lock_errors(two_at_once, reference):
    assert two_at_once["codes"] == [0, 0], [log[-3000:] for log in two_at_once["logs"]]
    for log in two_at_once["logs"]:
        assert not any(m in log for m in LOCK_MARKERS)
    records = _run_records(two_at_once["root"] / "home")
    assert [r.dagster_run.status.value for r in records] == ["SUCCESS", "SUCCESS"]
    from trading_assets.store.warehouse import Warehouse

    wh = Warehouse(two_at_once["root"] / "data" / "trading.duckdb")
    # the same range twice: the tables are those of one clean run (no duplicate, no half write)
    assert table_hashes(wh, skip=APPEND_ONLY) == table_hashes(reference.wh, skip=APPEND_ONLY)


@pytest.mark.slow
def test_the_second_cli_run_waits_for_the_first(two_at_once):
    """Both runs start, but the warehouse's run lock (WarehouseResource) lets one run's steps go only
    after every step of the other has finished: no interleaving of the path-dependent book."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    home = two_at_once["root"] / "home"
    records = _run_records(home)
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        spans = []
        for r in records:
            steps = instance.get_run_step_stats(r.dagster_run.run_id)
            spans.append((min(s.start_time for s in steps), max(s.end_time for s in steps)))
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert b_start >= a_end, f"steps overlapped: first run {a_start}..{a_end}, second {b_start}..{b_end}"
    assert any("waiting for the run that holds the warehouse" in log for log in two_at_once["logs"])


@pytest.mark.slow
def test_explain_during_a_write_run_succeeds_or_says_it_is_locked(tmp_path):
    root = tmp_path / "busy"
    done = run_graph(root, SHORT[0], SHORT[-1])  # a warehouse with decisions to explain
    assert done.success
    env = cli_env(root)
    log = root / "writer.log"
    writer = cli_popen(cli_args(SHORT[0], SHORT[-1]), env, log)
    outcomes = []
    try:
        deadline = time.monotonic() + 300
        while 'Started execution of step "market_data"' not in log.read_text():
            assert writer.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        while writer.poll() is None and len(outcomes) < 3:
            p = subprocess.run(
                [str(VENV_BIN / "trading-cycle"), "explain", "--date", SHORT[25].isoformat(), "--symbol", "AAPL", "--json"],
                env=env, capture_output=True, text=True, timeout=120, cwd=env["TRADING_DATA_DIR"],
            )
            outcomes.append((p.returncode, p.stdout, p.stderr))
    finally:
        assert writer.wait(600) == 0, log.read_text()[-3000:]
    assert outcomes, "the write run ended before explain could run during it"
    for code, out, err in outcomes:
        if code == 0:
            assert '"symbol": "AAPL"' in out
        else:  # a clear message, never a traceback
            assert code == 1 and "locked by another writing process" in err and "Traceback" not in err, err
