"""The book with TWAP / VWAP execution: children in `executions`, one parent row in `fills`, carry or cancel."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest

from trading_assets.domain import execution as ex
from trading_assets.domain import portfolio as pf
from trading_assets.settings import load_settings
from trading_assets_tests.execution.test_execution import _random_sessions


def _with_bars(sessions, thin: bool = True):
    out = []
    for x in sessions:
        p = x.prices.with_columns(
            (pl.max_horizontal("open", "close") * 1.012).alias("high"),
            (pl.min_horizontal("open", "close") * 0.987).alias("low"))
        # thin names: ADV small enough for the participation cap to bind
        f = x.features.with_columns(pl.col("adv_shares_21d").clip(upper_bound=60_000.0)) if thin else x.features
        out.append(dataclasses.replace(x, prices=p, features=f))
    return out


def _settings(**kw):
    s = load_settings({"TRADING_PORTFOLIO_METHOD": "kelly_diagonal"})  # the execution of the Meta-Brain's targets
    return s.replace(execution=dataclasses.replace(s.execution, **kw))


@pytest.mark.parametrize("algo", ["twap", "vwap"])
def test_children_add_up_to_the_parent_rows(algo):
    s = _settings(algo=algo)
    out = pf.run_book(pf.initial_state(s), _with_bars(_random_sessions()), s)
    f, x = out.fills, out.executions
    assert x.height and f.height and (f["algo"] == algo).all() and (out.orders["algo"] == algo).all()
    agg = x.group_by("order_id").agg(pl.col("quantity").sum().alias("q"), pl.col("planned_quantity").sum().alias("plan"),
                                     (pl.col("quantity") * pl.col("price")).sum().alias("notional"),
                                     pl.col("cost").sum().alias("cost"), pl.col("commission").sum().alias("comm"))
    j = f.filter(pl.col("status") == ex.FILLED).join(agg, on="order_id", how="left")
    assert j["q"].null_count() == 0
    assert (j["q"] == j["quantity"]).all() and (j["plan"] == j["ordered_quantity"]).all()
    assert (j["quantity"] + j["leftover_quantity"] == j["ordered_quantity"]).all()
    assert ((j["notional"] / j["quantity"] - j["price"]).abs() < 1e-9 * j["price"]).all()
    assert ((j["cost"] - j["slippage_cost"]).abs() < 1e-6).all() and ((j["comm"] - j["commission"]).abs() < 1e-9).all()
    assert (x.filter(pl.col("cap_quantity").is_not_null())["quantity"] <= x.filter(pl.col("cap_quantity").is_not_null())["cap_quantity"]).all()
    assert (f["leftover_quantity"] > 0).any(), "the cap should bind on the thin names"
    assert (f.filter(pl.col("leftover_quantity") > 0)["leftover"] == ex.LEFTOVER_CANCELLED).all()
    # the slot prices lie in each fill session's [low, high]
    bars = pl.concat([xx.prices.with_columns(pl.lit(xx.date).alias("date")) for xx in _with_bars(_random_sessions())])
    k = x.join(bars, on=["date", "symbol"])
    assert ((k["slot_price"] <= k["high"] * (1 + 1e-12)) & (k["slot_price"] >= k["low"] * (1 - 1e-12))).all()
    # deterministic: a second walk is identical
    again = pf.run_book(pf.initial_state(s), _with_bars(_random_sessions()), s)
    assert again.executions.equals(x) and again.fills.equals(f, null_equal=True)


def test_carry_turns_the_leftover_into_an_order_of_the_fill_session():
    s = _settings(algo="twap", leftover="carry")
    out = pf.run_book(pf.initial_state(s), _with_bars(_random_sessions()), s)
    f, o = out.fills, out.orders
    carried = f.filter(pl.col("leftover") == ex.LEFTOVER_CARRIED)
    assert carried.height and set(f["leftover"].drop_nulls().unique()) <= {ex.LEFTOVER_CARRIED, ex.LEFTOVER_SUPERSEDED,
                                                                          ex.LEFTOVER_CANCELLED}
    for r in carried.iter_rows(named=True):
        cid = ex.order_id(r["date"], r["symbol"], r["side"], r["leftover_quantity"],
                          f"{r['date']}-t|carry:{r['order_id']}")
        row = o.filter(pl.col("order_id") == cid)
        assert row.height == 1 and row["quantity"][0] == r["leftover_quantity"] and row["date"][0] == r["date"]
    for r in f.filter(pl.col("leftover") == ex.LEFTOVER_SUPERSEDED).iter_rows(named=True):
        assert o.filter((pl.col("date") == r["date"]) & (pl.col("symbol") == r["symbol"])).height >= 1


def test_market_on_open_is_unchanged_by_bars():
    s = load_settings({})
    a = pf.run_book(pf.initial_state(s), _random_sessions(), s)
    b = pf.run_book(pf.initial_state(s), _with_bars(_random_sessions(), thin=False), s)
    cols = list(ex.FILL_SCHEMA)[:11]
    assert a.fills.select(cols).equals(b.fills.select(cols), null_equal=True)
    assert a.portfolio.equals(b.portfolio, null_equal=True)
    f = b.fills.filter(pl.col("status") == ex.FILLED)
    sign = pl.when(pl.col("side") == ex.BUY).then(1.0).otherwise(-1.0)
    hand = f.select((sign * (pl.col("price") / pl.col("arrival_price") - 1) * 1e4).alias("bps"))["bps"]
    assert ((f["shortfall_arrival_bps"] - hand).abs() < 1e-9).all() and (hand >= s.execution.slippage_bps - 1e-9).all()
