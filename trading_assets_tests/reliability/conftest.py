"""Helpers of the reliability suite: run a short range through the real asset graph, hash every table.

Two ways to run the graph, both the same Definitions (every asset and check of trading_assets.definitions):
- `run_graph(...)`: in this process, `execute_in_process` on an ephemeral Dagster instance, with the
  warehouse in a tmp folder. Measured on this machine (1 year x 5 symbols, 2 shared cores): 21 s
  against 116 s for the same run recorded in a SQLite DAGSTER_HOME, where Dagster's per-partition
  bookkeeping is ~80% of the time. The tables do not depend on the instance, so the fault, bad-data,
  point-in-time and determinism tests run this way; providers can be injected (faults, defects).
- `cli(...)`: `trading-cycle` as a real subprocess with its own TRADING_DATA_DIR and DAGSTER_HOME
  (the project's dagster.yaml), for what needs a real process and instance: crash, concurrency, edges.

`table_hashes(wh)` fingerprints every table with Warehouse.table_hash (volatile bookkeeping columns
excluded); `audit_entries(wh, root)` gives audit_log without its volatile columns and with the run's
folder replaced by "<ROOT>" (the cycle event records the settings, paths included).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from unittest import mock

import polars as pl

from trading_assets.domain import calendar
from trading_assets.store.warehouse import VOLATILE_COLUMNS, Warehouse
from trading_assets_tests.ops.conftest import VENV_BIN, base_env, make_home

# Every reliability run starts its history here (partitions, features' first bar).
HISTORY_START = date(2023, 1, 3)
SYMBOLS = ["AAPL", "MSFT", "JPM", "XOM", "JNJ"]  # + the benchmark SPY, added by the universe
SEED = 7
# Append-only logs: a rerun appends to them by design, so they are compared entry by entry, not hashed.
APPEND_ONLY = ("audit_log", "provider_metrics")


def sessions(start: date, n: int) -> list[date]:
    """The first n NYSE sessions from `start`."""
    return calendar.sessions(start, date(start.year + 2, 12, 31))[:n]


@dataclass
class GraphRun:
    root: Path  # the run's folder: data/ (warehouse, audit) and home/ (DAGSTER_HOME of CLI runs)
    start: date
    end: date
    success: bool
    run_id: str
    result: object  # dagster ExecuteInProcessResult (None for a CLI run)

    @property
    def wh(self) -> Warehouse:
        return Warehouse(self.root / "data" / "trading.duckdb", self.root / "data" / "audit")

    def failed_steps(self) -> list[str]:
        return [e.step_key for e in self.result.all_events if e.event_type_value == "STEP_FAILURE"]

    def check_results(self) -> dict[str, bool]:
        return {
            e.event_specific_data.check_name: e.event_specific_data.passed
            for e in self.result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }


def _definitions_from(history_start: date):
    """trading_assets.definitions with session partitions that start at history_start. The partitions
    are built from TRADING_HISTORY_START when trading_assets.defs.partitions is imported, so a module
    imported earlier under another start (another test package's environment) is reloaded, with
    every module that bound its SESSIONS, in dependency order."""
    import importlib

    import trading_assets.defs.partitions as partitions

    if partitions.SESSIONS.start.date() == history_start:
        from trading_assets import definitions

        return definitions
    from trading_assets import defs as pkg

    importlib.reload(partitions)
    for name in ("reference", "summary", "market_data", "quality", "features", "labels", "models", "trained_outputs", "signals", "decisions", "book",
                 "performance", "signal_quality", "evaluation_plots", "automation"):
        importlib.reload(importlib.import_module(f"{pkg.__name__}.{name}"))
    from trading_assets import definitions

    return importlib.reload(definitions)


def trading_env(root: Path, providers: str = "synthetic", local_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The TRADING_* variables of a run into root/data."""
    env = {
        "TRADING_DATA_DIR": str(root / "data"),
        "TRADING_HISTORY_START": HISTORY_START.isoformat(),
        "TRADING_PROVIDERS": providers,
        "TRADING_SEED": str(SEED),
    }
    if local_dir is not None:
        env["TRADING_LOCAL_DATA_DIR"] = str(local_dir)
    env.update(extra)
    return env


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("TRADING_")]:
        del os.environ[k]
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# The guarantees here are the book's (it must trade within a few dozen synthetic sessions): the Meta-Brain's
# calibration (on by default) gives every agent weight 0 until it has 63 label sessions of out-of-sample record,
# so these runs pin it off. The calibration's own point in time and range == daily: models/test_assets.py.
UNCALIBRATED = {"meta": {"calibrate": False}}


def run_graph(
    root: Path,
    start: date,
    end: date,
    symbols: Sequence[str] = SYMBOLS,
    providers: str = "synthetic",
    local_dir: Path | None = None,
    provider_factory: Callable[[], list] | None = None,
    universe_file: Path | None = None,
    env: dict[str, str] | None = None,
) -> GraphRun:
    """Materialize every asset for sessions start..end (one run) into root/data, in this process.

    provider_factory: returns the provider objects the router uses instead of the configured ones
    (how faults and injected defects reach the real market_data asset). env: more TRADING_* variables.
    """
    import dagster as dg

    from trading_assets.defs.resources import PipelineConfig, WarehouseResource

    root.mkdir(parents=True, exist_ok=True)
    extra = {"TRADING_UNIVERSE": str(universe_file)} if universe_file else {}
    extra.update(env or {})
    with _environment(trading_env(root, providers, local_dir, **extra)):
        definitions = _definitions_from(HISTORY_START)
        data = root / "data"
        resources = {
            "warehouse": WarehouseResource(db_path=str(data / "trading.duckdb"), audit_dir=str(data / "audit")),
            "pipeline": PipelineConfig(),
        }
        defs = dg.Definitions(assets=definitions.all_assets, asset_checks=definitions.all_checks, resources=resources)
        job = defs.resolve_implicit_global_asset_job_def()
        tags = {"dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()}
        patch = (
            mock.patch("trading_assets.defs.market_data.build_providers", lambda names, settings: provider_factory())
            if provider_factory
            else contextlib.nullcontext()
        )
        with patch, dg.DagsterInstance.ephemeral() as instance:
            result = job.execute_in_process(
                instance=instance,
                run_config={"resources": {"pipeline": {"config": {"symbols": list(symbols), "settings_overrides": UNCALIBRATED}}}},
                tags=tags,
                raise_on_error=False,
            )
    return GraphRun(root, start, end, result.success, result.run_id, result)


# --- CLI subprocesses ------------------------------------------------------------------------------
def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment of a `trading-cycle` subprocess writing into root/data with DAGSTER_HOME root/home."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    home = make_home(root / "home")
    return base_env(root / "data", home, **{"TRADING_HISTORY_START": HISTORY_START.isoformat(), "TRADING_SEED": str(SEED), **extra})


def cli_args(start: date, end: date, symbols: Sequence[str] = SYMBOLS) -> list[str]:
    """A range run of `symbols`, uncalibrated as run_graph's runs (UNCALIBRATED)."""
    return ["--start", start.isoformat(), "--end", end.isoformat(), "--symbols", ",".join(symbols), "--settings", json.dumps(UNCALIBRATED)]


def cli_popen(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`trading-cycle ARGS --verbose` started in the background (stdout+stderr to `log`: Dagster's event log
    included, which the tests watch for a step's start), in its own session."""
    fh = open(log, "w")
    return subprocess.Popen(
        [str(VENV_BIN / "trading-cycle"), *args, "--verbose"], env=env, cwd=env["TRADING_DATA_DIR"], stdout=fh, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "trading-cycle"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=env["TRADING_DATA_DIR"]
    )


# --- comparing warehouses --------------------------------------------------------------------------
def tables(wh: Warehouse) -> list[str]:
    frame = wh.read("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY 1")
    return frame["table_name"].to_list()


def table_hashes(wh: Warehouse, skip: Sequence[str] = (), exclude: frozenset[str] = VOLATILE_COLUMNS) -> dict[str, str]:
    """{table: Warehouse.table_hash(table)} for every table of the warehouse except `skip`."""
    return {t: wh.table_hash(t, exclude) for t in tables(wh) if t not in skip}


def row_counts(wh: Warehouse) -> dict[str, int]:
    return {t: int(wh.read(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in tables(wh)}


def audit_entries(wh: Warehouse, root: Path) -> pl.DataFrame:
    """audit_log with run_id kept, other volatile columns dropped, the run folder replaced by <ROOT>."""
    frame = wh.read("SELECT run_id, cycle_id, event_type, date, symbol, payload FROM audit_log")
    return frame.with_columns(pl.col("payload").str.replace_all(str(root.resolve()), "<ROOT>", literal=True)).sort(
        "run_id", "event_type", "date", "symbol", "payload", nulls_last=True
    )


def without_run(frame: pl.DataFrame) -> pl.DataFrame:
    """The same entries with run_id dropped, in a canonical order (multiset comparison)."""
    cols = [c for c in frame.columns if c not in ("run_id", "ts", "event_id", "latency_ms")]
    return frame.select(cols).sort(cols, nulls_last=True)


def metrics_entries(wh: Warehouse) -> pl.DataFrame:
    return wh.read("SELECT * EXCLUDE (ts, latency_ms) FROM provider_metrics")


def rows_until(wh: Warehouse, table: str, t: date, drop: Sequence[str] = ()) -> pl.DataFrame:
    """A table's rows with date <= t, volatile columns (and `drop`) removed, sorted on every column."""
    frame = wh.read(f"SELECT * FROM {table} WHERE date <= ?", [t])
    cols = [c for c in frame.columns if c not in VOLATILE_COLUMNS and c not in drop]
    return frame.select(cols).sort(cols, nulls_last=True)


def jsonl_event_ids(audit_dir: Path) -> list[str]:
    out = []
    for f in sorted(audit_dir.glob("audit-*.jsonl")):
        out.extend(json.loads(line)["event_id"] for line in f.read_text().splitlines() if line.strip())
    return out


# --- the shared clean run ------------------------------------------------------------------------
import pytest  # noqa: E402

SHORT = sessions(HISTORY_START, 30)  # the short range most tests run: 30 sessions from the history start


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> GraphRun:
    """A clean run of SHORT on the synthetic market: the baseline the fault and bad-data runs are compared to."""
    run = run_graph(tmp_path_factory.mktemp("reference"), SHORT[0], SHORT[-1])
    assert run.success, run.failed_steps()
    return run
