"""build_cycle_summaries, computed once over the window, gives the documents of the per-session
version it replaced (cycle_summary_reference.py), key order included, on random frames with the
awkward cases: sessions without rows, null / NaN convictions and ties, null and empty reason-code
lists, failed quality rows without codes, null passed flags, non-ACTIVE states, several providers."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.cycle_summary import build_cycle_summaries
from trading_assets.domain.reasons import DECISIONS
from trading_assets_tests.domain import cycle_summary_reference

CODES = ["POSITIVE_EDGE", "SECTOR_LIMIT", "ADV_LIMIT", "TAIL_RISK", "VOL_SCALED", "RISK_OVERRIDE", "DRAWDOWN_SCALED"]


def frames(seed: int):
    rng = np.random.default_rng(seed)
    sessions = calendar.sessions(date(2024, 1, 2), date(2024, 3, 28))
    syms = [f"S{i:02d}" for i in range(12)]
    final, quality, prov, port = [], [], [], []
    for k, d in enumerate(sessions):
        if k % 9 == 4:
            continue  # a session with no rows at all
        for s in syms:
            if rng.random() < 0.2:
                continue
            codes = [str(c) for c in rng.choice(CODES, size=int(rng.integers(0, 4)), replace=False)]
            z = rng.choice([None, float("nan"), 0.5, float(np.round(rng.normal(), 1))])
            final.append((d, s, str(rng.choice(DECISIONS)), None if rng.random() < 0.05 else codes,
                          float(rng.uniform(0, 0.1)), float(rng.integers(-50, 50)), float(rng.normal(0, 1e-3)),
                          None if rng.random() < 0.1 else 0.0123456789123, z))
            passed = rng.choice([True, False, None], p=[0.7, 0.25, 0.05])
            quality.append((d, s, passed, [] if rng.random() < 0.3 else [str(c) for c in rng.choice(CODES, 2)]))
        for name in rng.choice(["synthetic", "yfinance", "local"], size=int(rng.integers(1, 3)), replace=False):
            prov.append((d, str(name), int(rng.integers(1, 13))))
        port.append({"date": d, "nav": float(rng.uniform(9e5, 1.1e6)), "daily_return": float(rng.normal(0, 0.01)),
                     "drawdown": float(rng.uniform(0, 0.2)), "cvar_95": float(rng.uniform(0, 0.03)),
                     "leverage": float(rng.uniform(0, 1)), "recovery_phase": int(rng.integers(0, 3)),
                     "trading_state": str(rng.choice(["ACTIVE", "ACTIVE", "REDUCING", "HALTED"]))})
    final_df = pl.DataFrame(final, orient="row", schema={
        "date": pl.Date, "symbol": pl.String, "decision": pl.String, "reason_codes": pl.List(pl.String),
        "approved_weight": pl.Float64, "order_quantity": pl.Float64, "mu_hat": pl.Float64, "sigma_hat": pl.Float64,
        "z_score": pl.Float64})
    quality_df = pl.DataFrame(quality, orient="row", schema={"date": pl.Date, "symbol": pl.String, "passed": pl.Boolean,
                                                             "reason_codes": pl.List(pl.String)})
    prov_df = pl.DataFrame(prov, orient="row", schema={"date": pl.Date, "provider": pl.String, "rows": pl.Int64})
    return sessions, final_df, pl.DataFrame(port), quality_df, prov_df


@pytest.mark.parametrize("seed", range(4))
def test_cycle_summaries_equal_the_per_session_version(seed):
    sessions, final, port, quality, prov = frames(seed)
    kw = dict(universe_size=12, cycle_ids={d: f"{d}-h" for d in sessions}, settings_hash="h", feature_version="fv",
              mode="paper")
    new = build_cycle_summaries(sessions, final, port, quality, prov, **kw)
    old = cycle_summary_reference.build_cycle_summaries(sessions, final, port, quality, prov, **kw)
    assert list(new) == list(old)
    for d in sessions:  # same documents, same key order (the metadata shows them as built)
        assert json.dumps(new[d]) == json.dumps(old[d]), d
    assert any(v["top_buys"] for v in new.values()) and any(v["risk"]["warnings"] for v in new.values())


def test_cycle_summaries_of_empty_frames():
    sessions, final, port, quality, prov = frames(0)
    kw = dict(universe_size=0, cycle_ids={}, settings_hash="h", feature_version=None, mode="paper")
    new = build_cycle_summaries(sessions, final.clear(), port.clear(), quality.clear(), prov.clear(), **kw)
    old = cycle_summary_reference.build_cycle_summaries(sessions, final.clear(), port.clear(), quality.clear(),
                                                        prov.clear(), **kw)
    assert list(new) == list(old) and all(json.dumps(new[d]) == json.dumps(old[d]) for d in sessions)
