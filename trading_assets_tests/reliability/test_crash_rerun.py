"""Guarantee 3: a `trading-cycle` backfill SIGKILLed in the middle, then rerun over the same range, ends
with every table identical to a clean run in another folder; audit_log holds the two runs' entries and
nothing else; no order id appears twice."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import date

import polars as pl
import pytest

from trading_assets_tests.reliability.conftest import (
    APPEND_ONLY,
    HISTORY_START,
    SYMBOLS,
    audit_entries,
    cli,
    cli_args,
    cli_env,
    cli_popen,
    jsonl_event_ids,
    metrics_entries,
    row_counts,
    run_graph,
    table_hashes,
    without_run,
)

END = date(2023, 12, 29)  # one year of sessions: 2023-01-03..2023-12-29 (250 sessions)
KILL_AFTER = 'Started execution of step "features"'  # market data and quality are written by then


def _multiset_within(part: pl.DataFrame, whole: pl.DataFrame) -> list:
    """Rows of `part` that `whole` does not hold as many times (empty: part is a sub-multiset)."""
    have = Counter(map(repr, whole.rows()))  # repr: list columns (unserved) are not hashable
    extra = []
    for row, n in Counter(map(repr, part.rows())).items():
        if n > have.get(row, 0):
            extra.append(row)
    return extra


def _runs_in_instance(home) -> dict[str, str]:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    saved = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)  # the project's event-log storage locates itself by it
    try:
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            return {r.run_id: r.status.value for r in instance.get_runs()}
    finally:
        if saved is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = saved


@pytest.mark.slow
def test_sigkill_mid_backfill_then_rerun_equals_a_clean_run(tmp_path):
    root = tmp_path / "crashed"
    env = cli_env(root)
    log = root / "killed.log"
    proc = cli_popen(cli_args(HISTORY_START, END), env, log)
    try:
        deadline = time.monotonic() + 420
        while KILL_AFTER not in log.read_text():
            assert proc.poll() is None, f"the run ended before it could be killed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the run never reached the features step"
            time.sleep(0.2)
        time.sleep(1.0)  # inside the features step
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    wh = Warehouse_of(root)
    half = row_counts(wh)
    # killed in the middle: market data written, the end of the graph not reached
    assert half["price_history"] == 250 * (len(SYMBOLS) + 1) and half["data_quality_log"] > 0
    assert half["cycle_meta"] == 0 and half["portfolio"] == 0
    killed_ids = set(audit_entries(wh, root)["run_id"]) | set(wh.read("SELECT DISTINCT run_id FROM provider_metrics")["run_id"])
    assert len(killed_ids) == 1
    [killed_id] = killed_ids

    rerun = cli(cli_args(HISTORY_START, END), env)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-4000:]
    runs = _runs_in_instance(root / "home")
    rerun_ids = [r for r, status in runs.items() if status == "SUCCESS"]
    assert killed_id in runs and len(rerun_ids) == 1
    [rerun_id] = rerun_ids

    clean = run_graph(tmp_path / "clean", HISTORY_START, END)
    assert clean.success, clean.failed_steps()

    # every table identical to the clean run (append-only logs compared entry by entry below)
    assert table_hashes(wh, skip=APPEND_ONLY) == table_hashes(clean.wh, skip=APPEND_ONLY)

    # audit_log: both runs' entries and nothing else
    audit, clean_audit = audit_entries(wh, root), audit_entries(clean.wh, clean.root)
    assert set(audit["run_id"]) <= {killed_id, rerun_id}
    assert without_run(audit.filter(pl.col("run_id") == rerun_id)).equals(without_run(clean_audit))
    assert _multiset_within(without_run(audit.filter(pl.col("run_id") == killed_id)), without_run(clean_audit)) == []
    ids = wh.read("SELECT event_id, run_id FROM audit_log")
    assert ids["event_id"].n_unique() == ids.height
    mirrored = jsonl_event_ids(root / "data" / "audit")
    assert len(mirrored) == len(set(mirrored)) and set(mirrored) <= set(ids["event_id"])
    assert set(ids.filter(pl.col("run_id") == rerun_id)["event_id"]) <= set(mirrored)

    # provider_metrics: the rerun's attempts are the clean run's; the killed run's, a subset
    metrics, clean_metrics = metrics_entries(wh), metrics_entries(clean.wh)
    assert set(metrics["run_id"]) == {killed_id, rerun_id}
    assert without_run(metrics.filter(pl.col("run_id") == rerun_id)).equals(without_run(clean_metrics))
    assert _multiset_within(without_run(metrics.filter(pl.col("run_id") == killed_id)), without_run(clean_metrics)) == []

    # no order id twice: not in orders, not in fills, not among one run's audit entries
    for table in ("orders", "fills"):
        n = wh.read(f"SELECT count(*) AS n, count(DISTINCT order_id) AS d FROM {table}").row(0)
        assert n[0] == n[1] > 0, table
    orders = audit.filter(pl.col("event_type") == "order").with_columns(
        pl.col("payload").str.json_path_match("$.order_id").alias("order_id")
    )
    assert orders.group_by("run_id", "order_id").len()["len"].max() == 1


def Warehouse_of(root):
    from trading_assets.store.warehouse import Warehouse

    return Warehouse(root / "data" / "trading.duckdb", root / "data" / "audit")
