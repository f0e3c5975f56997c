"""materialize() agent_outputs and meta_decisions against a tmp warehouse filled by hand."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import polars as pl
import pytest

from trading_assets.defs import decisions as dec_defs
from trading_assets.defs import signals as sig_defs
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.domain import reasons as rc
from trading_assets.settings import load_settings
from trading_assets_tests.agents.helpers import NEUTRAL, frame

SESSIONS = calendar.sessions(date.today() - timedelta(days=30), date.today() - timedelta(days=1))[-3:]
ASSETS = [
    sig_defs.agent_outputs,
    sig_defs.agent_outputs_valid,
    dec_defs.meta_decisions,
    dec_defs.meta_decisions_finite,
    dec_defs.meta_decisions_disagreement,
]


def _features(day: date, i: int) -> pl.DataFrame:
    rows = [
        {"symbol": "SPY", "px_sma_200": 0.04 - 0.03 * i, "vol_20": 0.12 + 0.08 * i},
        {"symbol": "A", "mom_12_1": 0.3, "mom_6m": 0.2, "mom_3m": 0.1, "px_sma_200": 0.1, "golden_cross": float(i == 1)},
        {"symbol": "B", "zscore_20": -2.5, "rsi_14": 22.0, "bb_pctb_20": -0.1, "mom_3m": -0.05 * i},
        {"symbol": "C", "mom_12_1": -0.3, "mom_6m": -0.2, "vol_rank_20": 0.9},
        {"symbol": "E", "adv_dollar_21d": 1.0e6, "volume_ratio_20": 0.5, "logret_5": 0.02},
    ]
    return frame(rows, day).with_columns(
        history_rows=pl.lit(300, pl.Int32), quality_flagged=pl.lit(False), benchmark_available=pl.lit(True),
        feature_version=pl.lit("test-v1"),
    )  # fmt: skip


@pytest.fixture
def filled(warehouse):
    wh = warehouse
    wh.replace_table(
        "universe",
        pl.DataFrame(
            {
                "symbol": ["A", "B", "C", "D", "E", "SPY"],
                "name": ["a", "b", "c", "d", "e", "spy"],
                "sector": ["Tech", "Energy", "Tech", "Utilities", "Energy", "Index"],
                "is_benchmark": [False] * 5 + [True],
                "source_file": ["test"] * 6,
            }
        ),
    )
    wh.ensure_columns("features", {c: "DOUBLE" for c in NEUTRAL} | {"logret_1": "DOUBLE", "px_sma_50": "DOUBLE"})  # the history agents' columns
    feats = pl.concat([_features(d, i) for i, d in enumerate(SESSIONS)])
    wh.replace_window("features", feats, SESSIONS[0], SESSIONS[-1])
    dq = pl.DataFrame(
        [
            {"date": d, "symbol": s, "score": 0.2 if (s == "C" and i == 1) else 1.0, "passed": not (s == "C" and i == 1),
             "reason_codes": ["STALE_PRICE"] if (s == "C" and i == 1) else []}
            for i, d in enumerate(SESSIONS) for s in ["A", "B", "C", "D", "E", "SPY"]
        ],
        schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64, "passed": pl.Boolean, "reason_codes": pl.List(pl.String)},
    )  # fmt: skip
    wh.replace_window("data_quality_log", dq, SESSIONS[0], SESSIONS[-1])
    return wh


UNCALIBRATED = {"meta": {"calibrate": False}}


def _resources(wh) -> dict:
    # hand-made agent outputs have no out-of-sample record, so the (default) calibration would silence every agent:
    # the ensemble's formulas are tested uncalibrated here, the calibration in models/test_assets.py
    return {"warehouse": WarehouseResource(db_path=str(wh.db_path), audit_dir=str(wh.audit_dir)),
            "pipeline": PipelineConfig(settings_overrides=UNCALIBRATED)}


def _range_tags(a: date, b: date) -> dict:
    return {"dagster/asset_partition_range_start": str(a), "dagster/asset_partition_range_end": str(b)}


def _decisions(wh, day: date) -> pl.DataFrame:
    return wh.read("SELECT * EXCLUDE (run_id) FROM decisions WHERE date = ? ORDER BY symbol", [day])


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_one_session_end_to_end(filled):
    wh, day = filled, SESSIONS[1]
    result = dg.materialize(ASSETS, partition_key=str(day), resources=_resources(wh))
    assert result.success
    assert _checks(result) == {
        sig_defs.AGENT_OUTPUTS_VALID: True,
        dec_defs.META_DECISIONS_FINITE: True,
        dec_defs.META_DECISIONS_DISAGREEMENT: True,
    }
    mo = wh.read("SELECT * FROM model_outputs WHERE date = ? AND role = 'heuristic'", [day])
    assert mo.height == 5 * 9  # A, B, C, E and the benchmark x nine heuristic/statistical agents (D has no features row)
    trained = wh.read("SELECT * FROM model_outputs WHERE date = ? AND role <> 'heuristic'", [day])
    # every trained variant is silent (no model trained yet) on A, B, C, E (never the benchmark)
    from trading_assets.domain.agents import trained_variants

    assert trained.height == 4 * len(trained_variants()) and (trained["confidence"] == 0).all() and trained["explanation"].str.contains("NOT_TRAINED").all()
    assert set(mo["run_id"]) == {result.run_id}
    d = {r["symbol"]: r for r in _decisions(wh, day).iter_rows(named=True)}
    assert sorted(d) == ["A", "B", "C", "D", "E"]  # the benchmark gets no decision
    assert d["A"]["pre_risk_decision"] == rc.EXECUTE_BUY and d["A"]["mu_hat"] > 0
    assert d["C"]["pre_risk_decision"] == rc.REJECT and d["C"]["reason_codes"] == [rc.DATA_QUALITY]
    assert d["D"]["pre_risk_decision"] == rc.REJECT and d["D"]["reason_codes"] == [rc.NO_FEATURES]
    assert d["E"]["mu_hat"] < 0  # thin and fading: liquidity agent negative
    assert len({r["regime"] for r in d.values()}) == 1 and d["A"]["regime"] in ("risk_on", "neutral", "risk_off")
    assert {r["cycle_id"] for r in d.values()} == {f"{day.isoformat()}-{load_settings().with_overrides(UNCALIBRATED).settings_hash()}"}
    meta = result.asset_materializations_for_node("meta_decisions")[0].metadata
    counts = meta["decision_counts"].value
    assert counts[rc.REJECT] == 2 and sum(counts.values()) == 5
    assert meta["top_buys"].value[0]["symbol"] == "A"
    assert set(meta["top_buys"].value[0]) == {"symbol", "mu_hat", "sigma_hat", "conviction"}
    assert meta["window"].value == f"{day}..{day}"


def test_session_alone_equals_session_inside_a_range_and_reruns_are_identical(filled):
    wh, day = filled, SESSIONS[1]
    assert dg.materialize(ASSETS, partition_key=str(day), resources=_resources(wh)).success
    alone = _decisions(wh, day)
    regime_alone = wh.read("SELECT * EXCLUDE (run_id) FROM model_outputs WHERE date = ? ORDER BY ALL", [day])
    ranged = dg.materialize(ASSETS, tags=_range_tags(SESSIONS[0], SESSIONS[-1]), resources=_resources(wh))
    assert ranged.success
    assert _decisions(wh, day).equals(alone)
    assert wh.read("SELECT * EXCLUDE (run_id) FROM model_outputs WHERE date = ? ORDER BY ALL", [day]).equals(regime_alone)
    assert wh.read("SELECT count(*) AS n FROM decisions")["n"][0] == 3 * 5
    h1, h2 = wh.table_hash("decisions"), wh.table_hash("model_outputs")
    assert dg.materialize(ASSETS, tags=_range_tags(SESSIONS[0], SESSIONS[-1]), resources=_resources(wh)).success
    assert (wh.table_hash("decisions"), wh.table_hash("model_outputs")) == (h1, h2)
    # the regime moves with the benchmark: calm uptrend on the first session, stormy downtrend on the last
    regimes = wh.read("SELECT DISTINCT date, regime FROM decisions ORDER BY date")["regime"].to_list()
    assert regimes[0] == "risk_on" and regimes[-1] != "risk_on"


def test_a_session_without_features_fails_the_blocking_check_and_stops_decisions(filled):
    wh = filled
    empty_day = calendar.previous_session(SESSIONS[0])
    result = dg.materialize(ASSETS, partition_key=str(empty_day), resources=_resources(wh), raise_on_error=False)
    assert not result.success
    assert _checks(result).get(sig_defs.AGENT_OUTPUTS_VALID) is False
    assert not result.asset_materializations_for_node("meta_decisions")  # blocked downstream


def test_a_features_table_without_the_agents_columns_is_a_clear_failure(warehouse):
    warehouse.replace_table(
        "universe", pl.DataFrame({"symbol": ["A"], "name": ["a"], "sector": ["x"], "is_benchmark": [False], "source_file": ["t"]})
    )
    with pytest.raises(dg.Failure, match="lacks the columns"):
        dg.materialize([sig_defs.agent_outputs], partition_key=str(SESSIONS[0]), resources=_resources(warehouse))
