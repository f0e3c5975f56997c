"""agent_outputs and meta_decisions compute in blocks of sessions: the rows equal one pass, bit for bit.

Pure level: run_agents and meta_brain.decide on session blocks (partitions.session_blocks) of a random
features frame (nulls, NaN, inf, a benchmark) equal the whole-window call exactly. Asset level: the
same range materialized with one session per block and with one block gives identical tables and
metadata.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trading_assets.defs import decisions as dec_defs
from trading_assets.defs import signals as sig_defs
from trading_assets.defs import partitions
from trading_assets.defs.partitions import session_blocks
from trading_assets.domain import calendar, meta_brain
from trading_assets.domain.agents import REGIME_AGENT, required_features, run_agents
from trading_assets.settings import AgentSettings, MetaBrainSettings
from trading_assets_tests.meta_brain.test_assets import ASSETS, SESSIONS, _range_tags, _resources, filled  # noqa: F401

DAYS = calendar.sessions(date(2024, 1, 2), date(2024, 3, 29))
SYMBOLS = [f"S{i:02d}" for i in range(30)] + ["SPY"]


def random_features(seed: int = 7) -> pl.DataFrame:
    """Every agent feature for DAYS x SYMBOLS: noise around plausible levels, ~5% null, a few NaN/inf,
    some (session, symbol) rows absent."""
    rng = np.random.default_rng(seed)
    cols = required_features(AgentSettings())
    keys = pl.DataFrame({"date": DAYS}).join(pl.DataFrame({"symbol": SYMBOLS}), how="cross")
    keys = keys.filter(pl.Series(rng.random(keys.height) > 0.03))  # a few missing rows (no features that day)
    n = keys.height
    data = {}
    for c in cols:
        x = rng.normal(0.0, 1.0, n)
        if c in ("ewma_vol_20", "vol_20", "vol_60"):
            x = np.abs(x) * 0.1 + 0.05
        elif c in ("rsi_14", "stoch_k_14", "stoch_d_14"):
            x = rng.uniform(0, 100, n)
        elif c in ("adv_dollar_21d",):
            x = np.exp(rng.normal(16, 2, n))
        elif c in ("golden_cross", "death_cross", "breakout_20", "sma_50_above_200"):
            x = (rng.random(n) < 0.1).astype(float)
        x[rng.random(n) < 0.002] = np.nan
        x[rng.random(n) < 0.001] = np.inf
        data[c] = pl.Series(c, x).set(pl.Series(rng.random(n) < 0.05), None)
    return keys.with_columns(**data).sort("date", "symbol")


def _blocks(frame: pl.DataFrame, rows: int) -> list[pl.DataFrame]:
    out = []
    for lo, hi in session_blocks(DAYS, len(SYMBOLS), rows):
        out.append(frame.filter(pl.col("date").is_between(lo, hi)))
    return out


def test_session_blocks_tile_the_window_day_by_day():
    for n_symbols, rows in ((31, 31 * 7), (31, 1), (2000, 250_000), (1, 10**9), (0, 5)):
        blocks = session_blocks(DAYS, n_symbols, rows)
        assert blocks[0][0] == DAYS[0] and blocks[-1][1] == DAYS[-1]
        assert all(hi >= lo for lo, hi in blocks)
        assert all(b[0] - a[1] == timedelta(days=1) for a, b in zip(blocks, blocks[1:]))  # no day missed or twice
        assert all(lo in DAYS for lo, _ in blocks)  # each block starts on a session: sessions never split
    assert len(session_blocks(DAYS, 31, 31 * 7)) == -(-len(DAYS) // 7)
    assert session_blocks(DAYS, 31, 10**9) == [(DAYS[0], DAYS[-1])]
    assert session_blocks(DAYS[:1], 31, 1) == [(DAYS[0], DAYS[0])]


@pytest.mark.parametrize("rows", [31, 31 * 7, 31 * 25])
def test_agents_and_meta_brain_in_session_blocks_equal_one_pass(rows):
    features = random_features()
    s = AgentSettings()
    whole = run_agents(features, s, benchmark="SPY")
    blocked = pl.concat([run_agents(f, s, benchmark="SPY") for f in _blocks(features, rows)])
    assert_frame_equal(blocked, whole, check_exact=True)
    assert whole["agent"].n_unique() == 6 and whole.filter(pl.col("confidence") > 0).height > 0

    rng = np.random.default_rng(3)
    quality = (
        features.select("date", "symbol")
        .with_columns(passed=pl.Series(rng.random(features.height) > 0.1))
        .filter(pl.Series(rng.random(features.height) > 0.02))  # some quality rows missing too
    )
    outputs = whole.select("date", "symbol", "agent", "mu", "sigma", "confidence", "state")
    m = MetaBrainSettings()
    one = meta_brain.decide(outputs, quality, m, exclude_symbols=["SPY"], regime_agent=REGIME_AGENT)
    parts = [
        meta_brain.decide(o, q, m, exclude_symbols=["SPY"], regime_agent=REGIME_AGENT)
        for o, q in zip(_blocks(outputs, rows), _blocks(quality, rows))
    ]
    assert_frame_equal(pl.concat(parts), one, check_exact=True)
    assert set(one["pre_risk_decision"]) >= {"REJECT", "HOLD"}


def _tables(wh) -> tuple[str, str]:
    return wh.table_hash("model_outputs"), wh.table_hash("decisions")


def _meta(result, node: str) -> dict:
    return {k: v.value for k, v in result.asset_materializations_for_node(node)[0].metadata.items()}


def test_assets_one_session_per_block_equal_one_block(filled, monkeypatch):  # noqa: F811
    wh = filled
    monkeypatch.setattr(partitions, "ROWS_PER_BLOCK", 10**9)
    one = dg.materialize(ASSETS, tags=_range_tags(SESSIONS[0], SESSIONS[-1]), resources=_resources(wh))
    assert one.success
    hashes_one = _tables(wh)
    monkeypatch.setattr(partitions, "ROWS_PER_BLOCK", 1)  # one session per block
    blocked = dg.materialize(ASSETS, tags=_range_tags(SESSIONS[0], SESSIONS[-1]), resources=_resources(wh))
    assert blocked.success
    assert _tables(wh) == hashes_one
    assert wh.read("SELECT count(*) AS n FROM decisions")["n"][0] == 3 * 5
    for node in ("agent_outputs", "meta_decisions"):
        a, b = _meta(one, node), _meta(blocked, node)
        a.pop("cycle_id_last_session", None), b.pop("cycle_id_last_session", None)
        a.pop("agent_fits", None), b.pop("agent_fits", None)  # the first run computes the fits, the second reuses them
        assert a == b, node
    assert {e.check_name: e.passed for e in blocked.get_asset_check_evaluations()} == {
        sig_defs.AGENT_OUTPUTS_VALID: True,
        dec_defs.META_DECISIONS_FINITE: True,
        dec_defs.META_DECISIONS_DISAGREEMENT: True,
    }


def test_replace_window_in_session_blocks_replaces_every_session_and_checks_its_blocks(warehouse):
    wh = warehouse
    days = SESSIONS
    row = lambda d, s, x: {"date": d, "symbol": s, "agent": "momentum", "mu": x, "sigma": 0.01, "confidence": 0.5}  # noqa: E731
    schema = {"date": pl.Date, "symbol": pl.String, "agent": pl.String, "mu": pl.Float64, "sigma": pl.Float64, "confidence": pl.Float64}
    old = pl.DataFrame([row(d, s, 1.0) for d in days for s in ("A", "B")], schema=schema)
    wh.replace_window("model_outputs", old, days[0], days[-1])
    one = timedelta(days=1)
    new = [
        (days[0], days[1] - one, pl.DataFrame([row(days[0], "A", 2.0)], schema=schema)),
        (days[1], days[2] - one, pl.DataFrame(schema=schema)),  # an empty block still replaces its sessions
        (days[2], days[2], pl.DataFrame([row(days[2], "A", 3.0), row(days[2], "B", 4.0)], schema=schema)),
    ]
    assert sig_defs.replace_window_in_session_blocks(wh, "model_outputs", new, days[0], days[-1]) == 3
    got = wh.read("SELECT date, symbol, mu FROM model_outputs ORDER BY date, symbol").rows()
    assert got == [(days[0], "A", 2.0), (days[2], "A", 3.0), (days[2], "B", 4.0)]
    # limited to some symbols: the others' rows stay
    only_b = [(days[0], days[-1], pl.DataFrame([row(days[1], "B", 5.0)], schema=schema))]
    sig_defs.replace_window_in_session_blocks(wh, "model_outputs", only_b, days[0], days[-1], symbols=["B"])
    got = wh.read("SELECT date, symbol, mu FROM model_outputs ORDER BY date, symbol").rows()
    assert got == [(days[0], "A", 2.0), (days[1], "B", 5.0), (days[2], "A", 3.0)]
    before = wh.table_hash("model_outputs")
    bad_blocks = [  # a gap, overlapping blocks, a row outside its block, short of the window end: refused, nothing written
        [(days[0], days[0], pl.DataFrame(schema=schema)), (days[2], days[2], pl.DataFrame(schema=schema))],
        [(days[0], days[1], pl.DataFrame(schema=schema)), (days[1], days[2], pl.DataFrame(schema=schema))],
        [(days[0], days[2], pl.DataFrame([row(days[2] + one, "A", 9.0)], schema=schema))],
        [(days[0], days[1] - one, pl.DataFrame([row(days[0], "A", 9.0)], schema=schema))],
    ]
    for blocks in bad_blocks:
        with pytest.raises(ValueError):
            sig_defs.replace_window_in_session_blocks(wh, "model_outputs", blocks, days[0], days[-1])
        assert wh.table_hash("model_outputs") == before
