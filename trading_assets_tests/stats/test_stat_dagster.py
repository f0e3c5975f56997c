"""The statistical agents through a real Dagster materialization on the synthetic market (local files):
point in time (prices after t perturbed: model_outputs and agent_fits rows up to t unchanged) and run
boundaries (a range up to t-1, then a daily run at t = the same rows as one range run), with short
windows so that GARCH, HMM and EVT fits exist within ~100 sessions."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.universe import load_universe
from trading_assets_tests.reliability.conftest import (
    HISTORY_START,
    SEED,
    SYMBOLS,
    _definitions_from,
    _environment,
    sessions,
    trading_env,
)

DAYS = sessions(HISTORY_START, 118)
T = DAYS[104]  # the cut
STAT_AGENTS = ("garch", "hmm_regime", "evt_tail")
OVERRIDES = {"agents": {
    "garch_window": 80, "garch_min_obs": 60, "garch_cadence": 10,
    "hmm_window": 80, "hmm_min_obs": 40, "hmm_cadence": 10, "hmm_seeds": 2,
    "evt_window": 80, "evt_threshold_q": 0.9, "evt_min_exceedances": 6, "evt_cadence": 10,
}}
SELECT = ("universe", "price_history", "corporate_actions", "data_quality", "features", "agent_outputs")
PRICES = ("open", "high", "low", "close", "adj_close")


def _materialize(root, folder, start, end):
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource
    from trading_assets.store.warehouse import Warehouse

    with _environment(trading_env(root, "local", folder)):
        definitions = _definitions_from(HISTORY_START)
        data = root / "data"
        resources = {
            "warehouse": WarehouseResource(db_path=str(data / "trading.duckdb"), audit_dir=str(data / "audit")),
            "pipeline": PipelineConfig(settings_overrides=OVERRIDES),
        }
        assets = [a for a in definitions.all_assets if any(k.path[-1] in SELECT for k in a.keys)]
        tags = {"dagster/asset_partition_range_start": start.isoformat(), "dagster/asset_partition_range_end": end.isoformat()}
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(assets, resources=resources, instance=instance, tags=tags, selection=list(SELECT))
        assert result.success
    return Warehouse(root / "data" / "trading.duckdb", root / "data" / "audit")


def _outputs(wh, until):
    return wh.read(
        "SELECT date, symbol, agent, mu, sigma, confidence, explanation, agent_version, state FROM model_outputs "
        "WHERE agent IN ('garch', 'hmm_regime', 'evt_tail') AND date <= ? ORDER BY date, symbol, agent", [until])


def _fits(wh, until):
    return wh.read("SELECT * EXCLUDE (run_id) FROM agent_fits WHERE fit_date <= ? ORDER BY fit_date, agent, symbol", [until])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("stat_pit")
    got = SyntheticProvider(SEED, load_universe()).fetch([*SYMBOLS, "SPY"], DAYS[0], DAYS[-1])
    after = pl.col("date") > T
    perturbed = got.bars.with_columns(
        [pl.when(after).then(pl.col(c) * 1.37).otherwise(pl.col(c)).alias(c) for c in PRICES])
    out = {}
    for name, bars in (("original", got.bars), ("perturbed", perturbed)):
        folder = root / f"{name}_bars"
        folder.mkdir()
        bars.write_parquet(folder / "bars.parquet")
        got.actions.write_parquet(folder / "corporate_actions.parquet")
        out[name] = _materialize(root / name, folder, DAYS[0], DAYS[-1])
    # run boundaries: up to the session before t, then t alone (a daily run) on the same warehouse
    split = root / "split"
    _materialize(split, root / "original_bars", DAYS[0], DAYS[103])
    out["split"] = _materialize(split, root / "original_bars", T, T)
    return out


def test_fits_exist_and_the_agents_speak(runs):
    fits = _fits(runs["original"], DAYS[-1])
    for agent in STAT_AGENTS:
        ok = fits.filter((pl.col("agent") == agent) & pl.col("converged"))
        assert ok.height > 0, agent
    speaking = _outputs(runs["original"], DAYS[-1]).filter(pl.col("confidence") > 0)
    assert set(speaking["agent"]) == set(STAT_AGENTS)
    later = _outputs(runs["original"], DAYS[-1]).filter(pl.col("date") > T)
    assert not later.equals(_outputs(runs["perturbed"], DAYS[-1]).filter(pl.col("date") > T))  # the perturbation is real


def test_rows_up_to_t_are_unchanged_by_later_prices(runs):
    assert _outputs(runs["perturbed"], T).equals(_outputs(runs["original"], T))
    assert _fits(runs["perturbed"], T).equals(_fits(runs["original"], T))
    assert _fits(runs["original"], T).height > 0


def test_a_daily_run_at_t_equals_the_range_run(runs):
    day = lambda wh: _outputs(wh, T).filter(pl.col("date") == T)  # noqa: E731
    assert day(runs["split"]).height == len(STAT_AGENTS) * (len(SYMBOLS) + 1)
    assert day(runs["split"]).equals(day(runs["original"]))
    # the daily run reused the stored fits or recomputed identical ones
    assert _fits(runs["split"], T).equals(_fits(runs["original"], T))
    # ... reused: every fit dated before t is still the range run's row; the daily run wrote only the fits
    # dated t (staggered: the symbols whose phase falls on t)
    ids = runs["split"].read("SELECT fit_date = ? AS at_t, run_id FROM agent_fits GROUP BY ALL", [T])
    before, at_t = ids.filter(~pl.col("at_t"))["run_id"], ids.filter(pl.col("at_t"))["run_id"]
    assert before.len() == 1 and (at_t.len() == 0 or (at_t.len() == 1 and at_t[0] != before[0]))


def test_explain_shows_the_fitted_state(runs):
    from trading_assets.explain import explain, render_text
    from trading_assets.settings import load_settings

    settings = load_settings().with_overrides(OVERRIDES)
    x = explain(runs["original"], T, SYMBOLS[0], settings=settings)
    fs = x["fitted_state"]
    g, h, e = fs["garch"], fs["hmm_regime"], fs["evt_tail"]
    assert set(g["params"]) >= {"omega", "alpha", "beta", "nu"} and g["converged"]
    assert h["symbol"] == "MARKET" and abs(sum(h["state_probabilities"].values()) - 1) < 2e-3
    assert set(e["params"]) >= {"threshold", "xi", "beta"}
    text = render_text(x)
    assert "omega" in text and "state probabilities" in text.replace("probabilities {", "state probabilities {") and "GPD threshold" in text
