"""The signal_quality asset through real Dagster runs of the whole graph on the synthetic market:
every source present, a row recomputed by hand from the tables with scipy, a range split in two runs
gives the same rows as one run (the daily path reads its earlier rows back), the picture and the table
in the materialization's metadata, and a learned model's role/shadow rows picked up automatically."""

from __future__ import annotations

import base64
import re
import shutil
from datetime import date

import dagster as dg
import polars as pl
import pytest
import scipy.stats as st

from trading_assets.domain.evaluation.ic import rolling_columns
from trading_assets.store.warehouse import VOLATILE_COLUMNS, Warehouse
from trading_assets_tests.reliability.conftest import HISTORY_START, SHORT, run_graph

SPLIT = SHORT[19]
AGENT = "volatility"  # an agent that speaks from the first sessions of the short run


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    run = run_graph(tmp_path_factory.mktemp("sq_whole"), SHORT[0], SHORT[-1])
    assert run.success, run.failed_steps()
    return run


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("sq_split")
    first = run_graph(root, SHORT[0], SPLIT)
    assert first.success, first.failed_steps()
    runs = [first]
    for day in SHORT[20:22]:  # two daily runs
        runs.append(run_graph(root, day, day))
        assert runs[-1].success, runs[-1].failed_steps()
    runs.append(run_graph(root, SHORT[22], SHORT[-1]))
    assert runs[-1].success, runs[-1].failed_steps()
    return runs


def _rows(wh: Warehouse, table: str) -> pl.DataFrame:
    frame = wh.read(f"SELECT * FROM {table}")
    cols = [c for c in frame.columns if c not in VOLATILE_COLUMNS]
    return frame.select(cols).sort(cols, nulls_last=True)


def test_every_source_is_scored(whole):
    wh = whole.wh
    agents = set(wh.read("SELECT DISTINCT agent FROM model_outputs")["agent"])
    sq = wh.read("SELECT * FROM signal_quality")
    assert set(sq["source"]) == agents | {"meta_brain", "risk_gate"}
    kinds = dict(sq.select("source", "kind").unique().rows())
    assert kinds["meta_brain"] == "meta_brain" and kinds["risk_gate"] == "risk_gate" and kinds["momentum"] == "agent"
    assert set(sq["horizon"]) == {1, 5}
    # the rows a partition owns: label date + 1 + h sessions = known_at, never later than the run's end
    labels = wh.read("SELECT DISTINCT date, horizon, known_at FROM labels")
    joined = sq.join(labels, on=["date", "horizon"], suffix="_label")
    assert joined.height == sq.height and (joined["known_at"] == joined["known_at_label"]).all()
    assert sq["known_at"].max() <= SHORT[-1]
    assert set(rolling_columns()) <= set(sq.columns)


def test_a_row_recomputed_from_the_tables_with_scipy(whole):
    wh = whole.wh
    s = SHORT[27]  # the last label date of horizon 1 (known at SHORT[29])
    row = wh.read("SELECT * FROM signal_quality WHERE date = ? AND source = 'meta_brain' AND horizon = 1", [s]).row(0, named=True)
    pairs = wh.read(
        "SELECT d.mu_hat_adj AS x, l.excess_return AS y FROM decisions d JOIN labels l USING (date, symbol) "
        "WHERE d.date = ? AND l.horizon = 1 AND l.valid AND d.mu_hat_adj IS NOT NULL AND d.symbol <> 'SPY' ORDER BY d.symbol",
        [s],
    )
    assert row["n"] == pairs.height >= 3
    assert row["rank_ic"] == pytest.approx(st.spearmanr(pairs["x"], pairs["y"])[0], rel=1e-10)
    assert row["ic"] == pytest.approx(st.pearsonr(pairs["x"], pairs["y"])[0], rel=1e-10)
    assert row["universe_n"] == wh.read("SELECT count(*) AS n FROM labels WHERE date = ? AND horizon = 1 AND valid AND symbol <> 'SPY'", [s])["n"][0]
    # the 21-session rolling mean of this row: the daily rank ICs of the label dates up to s
    hist = wh.read("SELECT rank_ic FROM signal_quality WHERE source = 'meta_brain' AND horizon = 1 AND date <= ? ORDER BY date", [s])
    values = hist["rank_ic"].to_list()[-21:]  # one row per session here
    known = [v for v in values if v is not None]
    assert len(values) == 21 and row["n_rank_ic_21"] == len(known) > 0
    if len(known) >= 11:  # ceil(21 / 2): the minimum number of values of a 21-session window
        assert row["rank_ic_mean_21"] == pytest.approx(sum(known) / len(known), rel=1e-12)
    else:  # the agents warm up over most of this short run
        assert row["rank_ic_mean_21"] is None


def test_a_range_split_into_runs_gives_the_same_rows(whole, split):
    for table in ("labels", "signal_quality"):
        assert _rows(split[-1].wh, table).equals(_rows(whole.wh, table)), table


def test_materialization_metadata_has_the_table_and_the_picture(whole):
    mats = {m.partition: m for m in whole.result.asset_materializations_for_node("signal_quality")}
    assert set(mats) == {d.isoformat() for d in SHORT}
    # only the window's last partition carries the picture (not one copy per partition of a range)
    assert [p for p, m in mats.items() if "rolling_rank_ic_plot" in m.metadata] == [SHORT[-1].isoformat()]
    md = mats[SHORT[-1].isoformat()].metadata
    table = md["latest"].value
    assert "| h | source |" in table and "meta_brain" in table and "risk_gate" in table
    image = md["rolling_rank_ic_plot"].value
    m = re.fullmatch(r"!\[[^\]]+\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", image)
    assert m, image[:200]
    assert base64.b64decode(m.group(1))[:8] == b"\x89PNG\r\n\x1a\n"


def test_shadow_and_learned_model_rows_are_picked_up(whole, tmp_path, monkeypatch):
    """A model_outputs with alpha's `role` column and a shadow model's rows: the shadow model becomes a
    source with role = 'shadow', through a real materialization of signal_quality alone."""
    from trading_assets.defs.resources import PipelineConfig, WarehouseResource
    from trading_assets.defs.signal_quality import signal_quality

    db = tmp_path / "trading.duckdb"
    shutil.copy(whole.wh.db_path, db)
    wh = Warehouse(db, tmp_path / "audit")
    with wh.transaction() as con:
        con.execute("ALTER TABLE model_outputs ADD COLUMN IF NOT EXISTS role VARCHAR")  # the schema has it since #12
        con.execute("UPDATE model_outputs SET role = 'heuristic'")
        con.execute(
            "INSERT INTO model_outputs (date, symbol, agent, mu, sigma, confidence, role) "
            "SELECT date, symbol, 'lgbm_shadow', -mu, sigma, confidence, 'shadow' FROM model_outputs WHERE agent = ?", [AGENT]
        )
        # a silent shadow (mu NULL: no earned edge) with a raw model score: scored by its score, not dropped
        con.execute(
            "INSERT INTO model_outputs (date, symbol, agent, mu, sigma, confidence, role, score) "
            "SELECT date, symbol, 'silent_shadow', NULL, sigma, 0.0, 'shadow', mu FROM model_outputs WHERE agent = ?", [AGENT]
        )
    monkeypatch.setenv("TRADING_HISTORY_START", HISTORY_START.isoformat())
    resources = {"warehouse": WarehouseResource(db_path=str(db), audit_dir=str(tmp_path / "audit")), "pipeline": PipelineConfig()}
    tags = {"dagster/asset_partition_range_start": SHORT[0].isoformat(), "dagster/asset_partition_range_end": SHORT[-1].isoformat()}
    result = dg.materialize([signal_quality], tags=tags, resources=resources, raise_on_error=False)
    assert result.success
    sq = wh.read("SELECT source, role, rank_ic, date, horizon FROM signal_quality")
    assert dict(sq.select("source", "role").unique().filter(pl.col("role").is_not_null()).rows())["lgbm_shadow"] == "shadow"
    mom = sq.filter(pl.col("source") == AGENT).sort("date", "horizon")
    shadow = sq.filter(pl.col("source") == "lgbm_shadow").sort("date", "horizon")
    assert (mom["role"] == "heuristic").all()
    # the shadow's score is minus the agent's: its rank IC is exactly the opposite
    both = mom.join(shadow, on=["date", "horizon"]).drop_nulls(["rank_ic", "rank_ic_right"])
    assert both.height > 0 and ((both["rank_ic"] + both["rank_ic_right"]).abs() < 1e-12).all()
    # the silent shadow's raw score equals the agent's mu: the same rank IC on every label date
    silent = sq.filter(pl.col("source") == "silent_shadow").sort("date", "horizon")
    same = mom.join(silent, on=["date", "horizon"]).drop_nulls(["rank_ic", "rank_ic_right"])
    assert same.height == both.height and ((same["rank_ic"] - same["rank_ic_right"]).abs() < 1e-12).all()
    assert date(2000, 1, 1) < sq["date"].min()
