"""A tiny hand-made market for the book: 4 names in 3 sectors plus the benchmark, a few sessions.

Prices: close_k = 100 * (1 + 0.01 * k) for A, flat 50 for B, 20 falling 1% a session for C, and D
with no open on the 3rd session of the window (its orders are CANCELLED). Opens are 0.5% above the
previous close. Decisions: A wants 14% (-> capped at 10%), B and C 8%, D 5%, with C turning to a
REJECT (DATA_QUALITY) on the 4th session and A's target dropping to 2% on the 5th (a sell).
History: 260 sessions of small deterministic log returns in features.logret_1.
"""

from __future__ import annotations

import math
from datetime import date

import dagster as dg
import numpy as np
import polars as pl

from trading_assets.domain import calendar

SYMBOLS = ["A", "B", "C", "D"]
SECTORS = {"A": "Tech", "B": "Tech", "C": "Health", "D": "Energy", "SPY": "Index"}
WINDOW = calendar.sessions(date(2024, 3, 1), date(2024, 3, 14))  # 10 sessions


def close_of(sym: str, k: int) -> float:
    return {"A": 100.0 * (1 + 0.01 * k), "B": 50.0, "C": 20.0 * 0.99**k, "D": 40.0, "SPY": 400.0}[sym]


def fill_market(wh, window: list[date] = WINDOW, d_no_open_at: int = 2) -> None:
    wh.ensure_columns("features", {"adv_shares_21d": "DOUBLE", "vol_20": "DOUBLE", "logret_1": "DOUBLE"})
    wh.replace_table("universe", pl.DataFrame({
        "symbol": SYMBOLS + ["SPY"], "name": [f"{s} Inc" for s in SYMBOLS] + ["SPDR"],
        "sector": [SECTORS[s] for s in SYMBOLS + ["SPY"]], "is_benchmark": [False] * 4 + [True],
        "source_file": ["test"] * 5}))
    hist = calendar.sessions(calendar.lookback_start(window[0], 260), window[-1])
    k0 = hist.index(window[0])
    rng = np.random.default_rng(3)
    feat_rows, px_rows, dec_rows = [], [], []
    for k, d in enumerate(hist):
        kk = k - k0  # session index inside the window (negative = history)
        for j, s in enumerate(SYMBOLS + ["SPY"]):
            r = float(rng.normal(0.0, 0.01 + 0.004 * j))
            feat_rows.append((d, s, 1e6 if s != "D" else 2000.0, 0.2 + 0.05 * j, r, "fv1"))
            if kk >= 0:
                c = close_of(s, kk)
                o = None if (s == "D" and kk == d_no_open_at) else close_of(s, kk - 1) * 1.005
                px_rows.append((d, s, o, c, c, 1e6, "synthetic"))
        if kk >= 0:
            for s in SYMBOLS + ["SPY"]:
                tw = {"A": 0.14 if kk < 4 else 0.02, "B": 0.08, "C": 0.08, "D": 0.05, "SPY": 0.0}[s]
                pre = "EXECUTE_BUY"
                codes = ["POSITIVE_EDGE"]
                if s == "C" and kk == 3:
                    pre, codes = "REJECT", ["DATA_QUALITY"]
                dec_rows.append((d, s, 0.001, 0.01, tw, pre, codes, "neutral", f"{d}-x"))
    wh.replace_window("features", pl.DataFrame(feat_rows, orient="row", schema={
        "date": pl.Date, "symbol": pl.String, "adv_shares_21d": pl.Float64, "vol_20": pl.Float64,
        "logret_1": pl.Float64, "feature_version": pl.String}), hist[0], hist[-1])
    wh.replace_window("price_history", pl.DataFrame(px_rows, orient="row", schema={
        "date": pl.Date, "symbol": pl.String, "open": pl.Float64, "close": pl.Float64, "adj_close": pl.Float64,
        "volume": pl.Float64, "provider": pl.String}).with_columns(pl.lit(True).alias("is_synthetic")),
        window[0], window[-1])
    wh.replace_window("decisions", pl.DataFrame(dec_rows, orient="row", schema={
        "date": pl.Date, "symbol": pl.String, "mu_hat": pl.Float64, "sigma_hat": pl.Float64,
        "target_weight_raw": pl.Float64, "pre_risk_decision": pl.String, "reason_codes": pl.List(pl.String),
        "regime": pl.String, "cycle_id": pl.String}), window[0], window[-1])


def materialize_book(wh, first: date, last: date, **pipeline):
    from trading_assets.defs.book import book
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource

    return dg.materialize(
        [book],
        resources={"warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)),
                   "pipeline": PipelineConfig(**pipeline)},
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()},
        raise_on_error=True,
    )


def book_tables(wh) -> dict[str, pl.DataFrame]:
    out = {}
    for t in ("risk_decisions", "orders", "fills", "positions", "portfolio"):
        df = wh.read(f"SELECT * FROM {t}")
        out[t] = df.drop("run_id").sort([c for c in ("date", "symbol", "order_id") if c in df.columns])
    return out


def approx(a: float, b: float, tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
