"""`trading-cycle --test` end to end, as a user runs it: a real subprocess, an empty data folder,
a real Dagster instance, offline; the cycle JSON on stdout and in cycle_meta."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from trading_assets.store.warehouse import Warehouse


def test_trading_cycle_test_prints_the_cycle_json(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update({"TRADING_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")})
    proc = subprocess.run(
        [sys.executable, "-m", "trading_assets.cli", "--test"], env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert set(out) >= {
        "cycle_id", "timestamp", "universe_size", "decision_counts", "duration_seconds", "performance", "risk",
        "top_buys", "top_sells", "data_quality", "providers", "run_id", "window",
    }
    assert out["universe_size"] == 5
    assert sum(out["decision_counts"].values()) == 5
    assert set(out["decision_counts"]) == {"EXECUTE_BUY", "EXECUTE_SELL", "HOLD", "REJECT"}
    assert out["window"]["sessions"] == 252
    assert out["performance"]["nav"] > 0 and 0 <= out["performance"]["drawdown"] < 1
    assert out["risk"]["leverage"] <= 1.0 + 1e-9 and out["risk"]["cvar"] is not None
    assert out["providers"] == {"synthetic": 6}  # 5 symbols + the benchmark, all labelled synthetic
    for item in out["top_buys"] + out["top_sells"]:
        assert set(item) >= {"symbol", "mu_hat", "sigma_hat", "conviction"}
    assert out["cycle_id"].startswith(out["window"]["end"])

    # stored: cycle_meta holds the same summary; the run is in the instance the UI reads
    wh = Warehouse(data / "trading.duckdb", data / "audit")
    stored = json.loads(wh.read("SELECT summary FROM cycle_meta WHERE cycle_id = ?", [out["cycle_id"]])["summary"][0])
    assert stored["decision_counts"] == out["decision_counts"]
    assert wh.read("SELECT count(*) AS n FROM cycle_meta")["n"][0] == 252
    os.environ["DAGSTER_HOME"] = str(data / "dagster_home")
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(out["run_id"])
        assert run is not None and run.is_success
        assert len(instance.get_materialized_partitions(dg.AssetKey("cycle_summary"))) == 252
    assert any(Path(data / "audit").glob("audit-*.jsonl"))

    # the tear sheet of the same warehouse, read-only, through the same entry point
    html = tmp_path / "sheet.html"
    rep = subprocess.run([sys.executable, "-m", "trading_assets.cli", "report", "--start", out["window"]["start"],
                          "--end", out["window"]["end"], "--out", str(html)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert rep.stdout.startswith(f"Report {out['window']['start']} .. {out['window']['end']} (benchmark SPY)")
    assert "book (net)" in rep.stdout and "equal weight" in rep.stdout and str(html) in rep.stdout
    page = html.read_text()
    assert page.count("src='data:image/png;base64,iVBOR") >= 2  # NAV vs benchmarks, monthly heatmap
    assert "<h2>Performance over the period</h2>" in page and "PnL by sector" in page


def test_live_without_a_broker_is_refused_and_writes_nothing(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADING_", "DAGSTER_"))}
    env.update({"TRADING_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")})
    proc = subprocess.run(
        [sys.executable, "-m", "trading_assets.cli", "--test", "--live"], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "--live refused" in proc.stderr and "broker" in proc.stderr
    assert proc.stdout == ""
    assert not (data / "trading.duckdb").exists()
