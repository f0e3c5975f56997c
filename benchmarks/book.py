"""Wall time of risk + execution (domain.portfolio.run_book) over generated inputs.

    /work/venv/bin/python benchmarks/book.py [--symbols 250] [--sessions 1260] [--asset]

Generates a seeded market (random-walk prices, 11 sectors, daily decisions with targets of 0-14%,
some pre-risk REJECTs, a risk-off stretch), then times the pure walk of the book session by session
(risk gate + fills + marks + orders). --asset also times the Dagster multi-asset end to end
(reads, walk, five table writes, audit of every decision/order/fill, checks) on a tmp warehouse.
Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date

import numpy as np
import polars as pl


def generate(n_sym: int, n_sess: int, seed: int = 11):
    from trading_assets.domain import calendar

    sessions = calendar.sessions(date(2021, 1, 4), date(2027, 6, 30))
    hist = sessions[: n_sess + 252]
    window = hist[252:]
    rng = np.random.default_rng(seed)
    syms = [f"S{i:03d}" for i in range(n_sym)]
    sectors = {s: f"Sector{i % 11}" for i, s in enumerate(syms)}
    logret = rng.standard_t(4, size=(len(hist), n_sym)) * 0.012 + 0.0002
    close = 50.0 * np.exp(np.cumsum(logret, axis=0))
    open_ = close * np.exp(rng.normal(0, 0.003, size=close.shape))
    target = np.clip(rng.normal(0.006, 0.02, size=close.shape), 0, 0.14)
    reject = rng.random(close.shape) < 0.02
    return hist, window, syms, sectors, logret, close, open_, target, reject


def run_domain(n_sym: int, n_sess: int) -> None:
    from trading_assets.domain import portfolio as pf
    from trading_assets.settings import load_settings

    hist, window, syms, sectors, logret, close, open_, target, reject = generate(n_sym, n_sess)
    settings = load_settings({})
    simple = np.expm1(logret)
    t0 = time.perf_counter()
    inputs = []
    for k, d in enumerate(window):
        i = k + 252
        regime = "risk_off" if 400 <= k < 460 else "neutral"
        inputs.append(pf.SessionInputs(
            date=d, cycle_id=f"{d}-bench",
            decisions=pl.DataFrame({
                "symbol": syms, "mu_hat": [0.001] * n_sym, "sigma_hat": [0.012] * n_sym,
                "target_weight_raw": target[i], "pre_risk_decision": np.where(reject[i], "REJECT", "EXECUTE_BUY"),
                "reason_codes": [["DATA_QUALITY"] if r else ["POSITIVE_EDGE"] for r in reject[i]],
                "regime": [regime] * n_sym}),
            prices=pl.DataFrame({"symbol": syms, "open": open_[i], "close": close[i]}),
            features=pl.DataFrame({"symbol": syms, "adv_shares_21d": np.full(n_sym, 2e6), "vol_20": np.full(n_sym, 0.19)}),
            returns=simple[i - 251: i + 1], return_symbols=syms, sectors=sectors))
    t1 = time.perf_counter()
    out = pf.run_book(pf.initial_state(settings), inputs, settings)
    t2 = time.perf_counter()
    counts = dict(out.risk_decisions.group_by("decision").len().sort("decision").rows())
    print(f"domain walk: {n_sym} symbols x {len(window)} sessions")
    print(f"  build inputs {t1 - t0:.2f} s; risk + execution (run_book) {t2 - t1:.2f} s "
          f"({(t2 - t1) / len(window) * 1e3:.2f} ms/session)")
    print(f"  rows: risk_decisions {out.risk_decisions.height}, orders {out.orders.height}, fills {out.fills.height}, "
          f"positions {out.positions.height}; decisions {counts}")
    p = out.portfolio
    print(f"  final NAV {p['nav'][-1]:,.0f}, max drawdown {p['drawdown'].max():.2%}, "
          f"mean leverage {p['leverage'].mean():.2f}, max CVaR {p['cvar_95'].max():.4f}, "
          f"states {dict(p.group_by('trading_state').len().rows())}")


def run_asset(n_sym: int, n_sess: int) -> None:
    tmp = tempfile.mkdtemp()
    os.environ["TRADING_DATA_DIR"] = tmp
    os.environ["DAGSTER_HOME"] = tmp
    from trading_assets.store.warehouse import Warehouse
    from trading_assets_tests.execution.book_fixtures import materialize_book

    hist, window, syms, sectors, logret, close, open_, target, reject = generate(n_sym, n_sess)
    wh = Warehouse(f"{tmp}/trading.duckdb", f"{tmp}/audit")
    wh.ensure_schema()
    wh.ensure_columns("features", {"adv_shares_21d": "DOUBLE", "vol_20": "DOUBLE", "logret_1": "DOUBLE"})
    wh.replace_table("universe", pl.DataFrame({"symbol": syms, "name": syms, "sector": [sectors[s] for s in syms],
                                               "is_benchmark": [False] * n_sym, "source_file": ["bench"] * n_sym}))
    nd = len(hist)
    long = lambda a: a.reshape(-1)  # noqa: E731  (row-major: date-major, symbol-minor)
    dates = np.repeat(np.array(hist, dtype="datetime64[D]"), n_sym)
    symcol = np.tile(syms, nd)
    wh.replace_window("features", pl.DataFrame({"date": dates, "symbol": symcol, "adv_shares_21d": 2e6, "vol_20": 0.19,
                                                "logret_1": long(logret), "feature_version": "bench"}), hist[0], hist[-1])
    k0 = 252 * n_sym
    wh.replace_window("price_history", pl.DataFrame({
        "date": dates[k0:], "symbol": symcol[k0:], "open": long(open_)[k0:], "close": long(close)[k0:],
        "adj_close": long(close)[k0:], "volume": 1e6, "provider": "synthetic", "is_synthetic": True}), window[0], window[-1])
    wh.replace_window("decisions", pl.DataFrame({
        "date": dates[k0:], "symbol": symcol[k0:], "mu_hat": 0.001, "sigma_hat": 0.012,
        "target_weight_raw": long(target)[k0:], "pre_risk_decision": np.where(long(reject)[k0:], "REJECT", "EXECUTE_BUY"),
        "reason_codes": [["DATA_QUALITY"] if r else ["POSITIVE_EDGE"] for r in long(reject)[k0:]],
        "regime": "neutral", "cycle_id": "bench"}), window[0], window[-1])
    t0 = time.perf_counter()
    materialize_book(wh, window[0], window[-1])
    t1 = time.perf_counter()
    print(f"Dagster asset `book` (reads + walk + writes + audit + checks), {n_sym} x {len(window)}: {t1 - t0:.1f} s")
    print(f"  audit events: {wh.read('SELECT count(*) AS n FROM audit_log')['n'][0]}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=250)
    ap.add_argument("--sessions", type=int, default=1260)
    ap.add_argument("--asset", action="store_true")
    a = ap.parse_args()
    run_domain(a.symbols, a.sessions)
    if a.asset:
        run_asset(a.symbols, a.sessions)
