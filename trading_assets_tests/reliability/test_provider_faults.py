"""Guarantee 1: provider faults through the real graph.

A provider "flaky" (the synthetic market behind a fault) is tried first (its provider_metrics history
is perfect, the synthetic's is poor, so the bandit ranks it first); the synthetic market is the fallback.
Each fault: the run succeeds, provider_metrics records the failure and its reason, and every table
equals the clean reference run. Symbols that no provider serves get NO_PROVIDER and REJECT."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import polars as pl
import pytest
from yfinance.exceptions import YFRateLimitError

from trading_assets.providers import base
from trading_assets.providers.base import FetchResult, empty_actions, empty_bars
from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.store.warehouse import VOLATILE_COLUMNS, Warehouse
from trading_assets.universe import load_universe
from trading_assets_tests.reliability.conftest import APPEND_ONLY, SEED, SHORT, SYMBOLS, run_graph, table_hashes

PRICES = ["open", "high", "low", "close"]


class Flaky:
    """The synthetic market behind one fault."""

    is_synthetic = True

    def __init__(self, fault: str, inner, name: str = "flaky"):
        self.fault, self.inner, self.calls, self.name = fault, inner, 0, name

    def fetch(self, symbols, start, end):
        self.calls += 1
        f = self.fault
        if f == "oserror":
            raise ConnectionResetError(104, "Connection reset by peer")  # an OSError
        if f == "timeout":
            raise TimeoutError("read timed out after 30 s")
        if f == "rate_limit":
            raise YFRateLimitError()  # what yfinance raises on HTTP 429
        if f == "empty":
            return FetchResult(self.name, empty_bars(), empty_actions(), missing=tuple(symbols))
        got = self.inner.fetch(symbols, start, end)
        if f == "partial_columns":
            return FetchResult(self.name, got.bars.drop("close", "volume"), got.actions)
        if f == "nan_rows":
            return FetchResult(self.name, got.bars.with_columns([pl.lit(float("nan")).alias(c) for c in PRICES]), got.actions)
        if f == "few_symbols":
            keep = list(symbols)[:2]
            return FetchResult(
                self.name, got.bars.filter(pl.col("symbol").is_in(keep)), got.actions.filter(pl.col("symbol").is_in(keep)),
                missing=tuple(s for s in symbols if s not in keep),
            )
        raise AssertionError(f)


class Without:
    """The synthetic market that cannot serve some symbols (reports them missing)."""

    name = "synthetic"
    is_synthetic = True

    def __init__(self, inner, absent):
        self.inner, self.absent = inner, set(absent)

    def fetch(self, symbols, start, end):
        got = self.inner.fetch([s for s in symbols if s not in self.absent], start, end)
        return FetchResult(self.name, got.bars, got.actions, missing=tuple(s for s in symbols if s in self.absent))


def _market():
    return SyntheticProvider(SEED, load_universe())


def _rank_flaky_first(root, flaky=("flaky",)):
    """provider_metrics history in which the flaky providers always served and synthetic always failed."""
    wh = Warehouse(root / "data" / "trading.duckdb", root / "data" / "audit")
    wh.ensure_schema()
    t0 = datetime(2022, 1, 3)
    rows = [
        {"ts": t0 + timedelta(minutes=i), "run_id": "history", "provider": p, "window_start": SHORT[0], "window_end": SHORT[0],
         "symbols_requested": 10, "symbols_served": 10 if ok else 0, "rows": 10 if ok else 0, "success": ok,
         "failure_reason": None if ok else base.NETWORK_ERROR, "latency_ms": 10.0, "quality": 1.0 if ok else None}
        for i, (p, ok) in enumerate([(f, True) for f in flaky for _ in range(60)] + [("synthetic", False)] * 60)
    ]
    wh.append("provider_metrics", pl.DataFrame(rows, infer_schema_length=None))


FAULTS = {
    "empty": base.EMPTY_RESPONSE,
    "oserror": base.NETWORK_ERROR,
    "timeout": base.TIMEOUT,
    "rate_limit": base.RATE_LIMITED,
    "partial_columns": base.MALFORMED_RESPONSE,
    "nan_rows": base.MALFORMED_RESPONSE,
    "few_symbols": base.PARTIAL_COVERAGE,
}


def _summaries(wh) -> list[dict]:
    """cycle_meta summaries without the provider mix (which names who served)."""
    return [{k: v for k, v in json.loads(s).items() if k != "providers"} for s in wh.read("SELECT summary FROM cycle_meta ORDER BY date")["summary"]]


def test_every_fault_falls_back_records_its_reason_and_changes_no_number(reference, tmp_path):
    """One run meets the seven faults: seven flaky providers, each ranked before the synthetic market."""
    root = tmp_path / "faults"
    names = {f: f"flaky_{f}" for f in FAULTS}
    _rank_flaky_first(root, list(names.values()))
    flaky = [Flaky(f, _market(), names[f]) for f in FAULTS]
    run = run_graph(root, SHORT[0], SHORT[-1], provider_factory=lambda: [*flaky, _market()])
    assert run.success, run.failed_steps()
    assert all(p.calls == 1 for p in flaky)  # every fault was really met

    m = run.wh.read("SELECT provider, success, failure_reason, symbols_served, symbols_requested, unserved "
                    "FROM provider_metrics WHERE run_id = ?", [run.run_id])
    rows = {r["provider"]: r for r in m.iter_rows(named=True)}
    assert set(rows) == {*names.values(), "synthetic", "router"}
    for fault, reason in FAULTS.items():
        r = rows[names[fault]]
        assert r["failure_reason"] == reason, fault
        assert r["success"] == (fault == "few_symbols") and r["symbols_served"] == (2 if fault == "few_symbols" else 0), fault
    n = len(SYMBOLS) + 1  # + SPY
    assert (rows["synthetic"]["success"], rows["synthetic"]["failure_reason"], rows["synthetic"]["symbols_served"]) == (True, None, n - 2)
    assert (rows["router"]["success"], list(rows["router"]["unserved"]), rows["router"]["symbols_served"]) == (True, [], n)
    providers = run.wh.read("SELECT provider, count(DISTINCT symbol) AS n FROM price_history GROUP BY provider ORDER BY provider").rows()
    assert providers == [(names["few_symbols"], 2), ("synthetic", n - 2)]

    # every number equals the clean run; only the provider label (and the summary's provider mix) differ
    exclude = VOLATILE_COLUMNS | {"provider"}
    skip = (*APPEND_ONLY, "cycle_meta", "data_quality_log")
    assert table_hashes(run.wh, skip=skip, exclude=exclude) == table_hashes(reference.wh, skip=skip, exclude=exclude)
    assert _summaries(run.wh) == _summaries(reference.wh)
    q = "SELECT date, symbol, score, passed, reason_codes, details FROM data_quality_log ORDER BY date, symbol"
    relabelled = run.wh.read(q).with_columns(pl.col("details").str.replace_all(names["few_symbols"], "synthetic", literal=True))
    assert relabelled.equals(reference.wh.read(q))  # details name the provider of the bar


def test_symbols_no_provider_serves_are_rejected_with_a_reason(reference, tmp_path):
    root = tmp_path / "unserved"
    _rank_flaky_first(root)
    run = run_graph(root, SHORT[0], SHORT[-1], provider_factory=lambda: [Flaky("oserror", None), Without(_market(), {"JNJ"})])
    assert run.success, run.failed_steps()
    wh = run.wh
    [router] = wh.read("SELECT * FROM provider_metrics WHERE run_id = ? AND provider = 'router'", [run.run_id]).rows(named=True)
    assert (router["success"], router["failure_reason"], list(router["unserved"])) == (False, "NO_PROVIDER", ["JNJ"])
    reasons = wh.read("SELECT provider, failure_reason FROM provider_metrics WHERE run_id = ? AND provider <> 'router' ORDER BY ts", [run.run_id])
    assert reasons.rows() == [("flaky", base.NETWORK_ERROR), ("synthetic", base.PARTIAL_COVERAGE)]

    dq = wh.read("SELECT date, passed, reason_codes FROM data_quality_log WHERE symbol = 'JNJ' ORDER BY date")
    assert dq.height == len(SHORT) and not dq["passed"].any()
    assert all("NO_PROVIDER" in codes for codes in dq["reason_codes"].to_list())
    final = wh.read("SELECT decision, reason_codes FROM risk_decisions WHERE symbol = 'JNJ'")
    assert final.height == len(SHORT) and set(final["decision"]) == {"REJECT"}
    assert all("DATA_QUALITY" in codes for codes in final["reason_codes"].to_list())
    assert wh.read("SELECT count(*) AS n FROM price_history WHERE symbol = 'JNJ'")["n"][0] == 0
    # the others' bars and quality are those of the clean run
    for table in ("price_history", "data_quality_log"):
        q = f"SELECT * EXCLUDE (run_id{', ingested_at' if table == 'price_history' else ''}) FROM {table} WHERE symbol <> 'JNJ' ORDER BY date, symbol"
        assert wh.read(q).equals(reference.wh.read(q)), table
