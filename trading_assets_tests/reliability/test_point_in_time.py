"""Guarantee 5: nothing at t reads data after t.

The synthetic market (bars and corporate actions) is written to a local-files folder; the graph runs
on it three times through the local provider: as is, with every price and volume after session t
perturbed, and with every row after t deleted (run up to t). Every table's rows at dates <= t are
the same in all three; for the evaluation tables, whose rows are owned by the session that realizes
them (labels: known_at = the exit session), the rows KNOWN at or before t are, and no label row
appears before the session that realizes it.

Two level shifts with no corporate action are injected (#16): JPM drops 30% on SHORT[15] (held two
sessions, an inferred action known on SHORT[17] <= t) and XOM drops 30% on t-1 (held on t-1 and t;
in the original run its inferred action is known on t+1, in the perturbed run the +37% after t
reverts it, and the truncated run ends before either is known): the rows up to t, the features
included, cannot tell. inferred_actions is dated by the session that knows the action."""

from __future__ import annotations

import polars as pl
import pytest

from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.universe import load_universe
from trading_assets.store.warehouse import VOLATILE_COLUMNS
from trading_assets_tests.reliability.conftest import SHORT, SYMBOLS, SEED, audit_entries, rows_until, run_graph, tables, without_run

T = SHORT[24]  # the cut: 25 sessions known (the book trades from the 21st), 5 after
SHIFTS = {"JPM": SHORT[15], "XOM": SHORT[23]}  # level shifts (x 0.7 from that session on), no action recorded
DATED = ("price_history", "corporate_actions", "data_quality_log", "session_quality", "inferred_actions", "features",
         "model_outputs", "decisions", "risk_decisions", "orders", "fills", "executions", "positions", "portfolio", "cycle_meta",
         "performance", "performance_metrics", "performance_attribution",
         "model_training_runs", "model_versions", "model_promotions", "latents")
# written only once a deep model has trained (>= min_train_sessions label sessions, more than this run has);
# their point in time: deep/test_deep_agents.py (perturbation) and models/test_assets.py (range == daily runs)
TRAINED_ONLY = ("latents",)
# tables whose partition column is known_at (a row about session `date` is written when it is known)
KNOWN_AT = ("labels", "signal_quality")
PRICES = ("open", "high", "low", "close", "adj_close")


def _write(folder, bars: pl.DataFrame, actions: pl.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    bars.write_parquet(folder / "bars.parquet")
    actions.write_parquet(folder / "corporate_actions.parquet")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pit")
    market = SyntheticProvider(SEED, load_universe())
    got = market.fetch([*SYMBOLS, "SPY"], SHORT[0], SHORT[-1])
    bars, actions = got.bars, got.actions
    for sym, day in SHIFTS.items():
        shifted = (pl.col("symbol") == sym) & (pl.col("date") >= day)
        bars = bars.with_columns([pl.when(shifted).then(pl.col(c) * 0.7).otherwise(pl.col(c)).alias(c) for c in PRICES])
    after = pl.col("date") > T
    perturbed = bars.with_columns(
        [pl.when(after).then(pl.col(c) * 1.37).otherwise(pl.col(c)).alias(c) for c in PRICES]
        + [pl.when(after).then(pl.col("volume") * 3.0).otherwise(pl.col("volume")).alias("volume")]
    )
    out = {}
    for name, b, a, end in (
        ("original", bars, actions, SHORT[-1]),
        ("perturbed", perturbed, actions.with_columns(pl.when(after).then(pl.col("price_factor") * 0.5).otherwise(pl.col("price_factor")).alias("price_factor")), SHORT[-1]),
        ("truncated", bars.filter(~after), actions.filter(~after), T),
    ):
        # one folder path for the three: its path is part of settings_hash, hence of every cycle_id
        folder = _write(root / "bars", b, a)
        run = run_graph(root / name, SHORT[0], end, providers="local", local_dir=folder)
        assert run.success, (name, run.failed_steps())
        out[name] = run
    return out


def test_the_perturbation_is_real(runs):
    """The runs differ after t (else the comparison below proves nothing)."""
    a, b = runs["original"].wh, runs["perturbed"].wh
    inferred = "SELECT date, symbol, ex_date FROM inferred_actions ORDER BY ALL"
    assert a.read(inferred).rows() == [(SHORT[17], "JPM", SHORT[15]), (SHORT[25], "XOM", SHORT[23])]
    assert b.read(inferred).rows() == [(SHORT[17], "JPM", SHORT[15])]  # XOM's shift reverted by the +37% after t
    held = "SELECT date FROM data_quality_log WHERE symbol = 'XOM' AND list_contains(reason_codes, 'MOVE_UNCONFIRMED') ORDER BY date"
    assert a.read(held)["date"].to_list()[:2] == [SHORT[23], T]
    late = "SELECT * EXCLUDE (run_id, ingested_at) FROM price_history WHERE date > ? ORDER BY date, symbol"
    assert not a.read(late, [T]).equals(b.read(late, [T]))
    for table in ("features", "portfolio"):
        q = f"SELECT count(*) AS n FROM {table} WHERE date > ?"
        assert a.read(q, [T])["n"][0] > 0
    assert runs["truncated"].wh.read("SELECT max(date) AS d FROM price_history")["d"][0] == T


@pytest.mark.parametrize("table", DATED)
def test_rows_up_to_t_are_unchanged_by_later_prices(runs, table):
    original = rows_until(runs["original"].wh, table, T)
    if table in TRAINED_ONLY:  # no model is trained within 30 sessions: the table must then be empty in every run
        assert original.height == 0 and rows_until(runs["perturbed"].wh, table, T).height == 0
        return
    assert original.height > 0  # else the comparison proves nothing
    assert rows_until(runs["perturbed"].wh, table, T).equals(original)
    # a run that ends at t also names its window: those two columns describe the run, not the data
    drop = ("window_start", "window_end") if table == "cycle_meta" else ()
    assert rows_until(runs["truncated"].wh, table, T, drop).equals(rows_until(runs["original"].wh, table, T, drop))


@pytest.mark.parametrize("table", KNOWN_AT)
def test_rows_known_up_to_t_are_unchanged_by_later_prices(runs, table):
    def known(run, drop=()):
        frame = run.wh.read(f"SELECT * FROM {table} WHERE known_at <= ?", [T])
        cols = [c for c in frame.columns if c not in VOLATILE_COLUMNS and c not in drop]
        return frame.select(cols).sort(cols, nulls_last=True)

    original = known(runs["original"])
    assert original.height > 0 and (original["valid"].sum() > 0 if table == "labels" else original["n"].sum() > 0)
    assert known(runs["perturbed"]).equals(original)
    assert known(runs["truncated"]).equals(original)
    # and the rows known after t did change (else this proves nothing)
    late = f"SELECT * EXCLUDE (run_id) FROM {table} WHERE known_at > ? ORDER BY ALL"
    assert not runs["original"].wh.read(late, [T]).equals(runs["perturbed"].wh.read(late, [T]))


def test_a_label_never_appears_before_the_session_that_realizes_it(runs):
    wh = runs["original"].wh
    bad = wh.read("SELECT * FROM labels WHERE NOT (known_at = exit_date AND exit_date > entry_date AND entry_date > date)")
    assert bad.height == 0
    # the run that ends at t has no label known after t, and its labels of decisions near t are absent
    truncated = runs["truncated"].wh
    assert truncated.read("SELECT count(*) AS n FROM labels WHERE known_at > ?", [T])["n"][0] == 0
    assert truncated.read("SELECT max(date) AS d FROM labels WHERE horizon = 1")["d"][0] < T


def test_audit_entries_up_to_t_are_unchanged(runs):
    def upto(run):
        return without_run(audit_entries(run.wh, run.root).filter(pl.col("date") <= T))

    assert upto(runs["perturbed"]).equals(upto(runs["original"]))


def test_every_dated_table_is_compared(runs):
    wh = runs["original"].wh
    dated = {t for t in tables(wh) if "date" in wh.read(f"SELECT * FROM {t} LIMIT 0").columns}
    # agent_calibration is written only with settings.meta.calibrate (off here; its point in time: trading_assets_tests/models)
    assert dated - {"audit_log", "agent_calibration"} == set(DATED) | set(KNOWN_AT)
