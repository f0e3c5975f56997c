"""The three portfolio methods inside the book's walk: the optimizer's targets reach the gate and the
tables, each method's book stays within the limits, and a failed solve holds the book with its reason."""

from __future__ import annotations

import json

import polars as pl
import pytest

from trading_assets.domain import optimizer as op
from trading_assets.domain import portfolio as pf
from trading_assets.domain import reasons as rc
from trading_assets.domain import risk
from trading_assets.settings import load_settings
from trading_assets_tests.execution.test_execution import _random_sessions


def _book(method: str):
    s = load_settings({"TRADING_PORTFOLIO_METHOD": method})
    return s, pf.run_book(pf.initial_state(s), _random_sessions(), s)


@pytest.mark.parametrize("method", ["kelly_mv", "kelly_diagonal", "topk_dropout"])
def test_each_method_books_within_the_limits(method):
    s, out = _book(method)
    rd, port = out.risk_decisions, out.portfolio
    assert set(port["method"].to_list()) == {method}
    for (d,), g in rd.partition_by("date", as_dict=True).items():
        assert risk.limit_violations(g["decision"].to_list(), g["approved_weight"].to_numpy(),
                                     g["current_weight"].to_numpy(), g["order_quantity"].to_numpy(),
                                     g["sector"].to_list(), s.risk) == []
    assert out.orders.height > 0
    if method == "kelly_diagonal":  # the seed's book: the gate's input is the Meta-Brain's target
        assert rd["optimizer_weight"].equals(rd["target_weight_raw"], null_equal=True)
        assert port["optimizer_status"].null_count() == port.height


def test_kelly_mv_records_its_outcome_and_its_targets_are_the_gates_input():
    s, out = _book("kelly_mv")
    port, rd = out.portfolio, out.risk_decisions
    assert set(port["optimizer_status"].to_list()) <= {"Solved", "AlmostSolved", "NoEdge", "NoTradableNames"}
    first = port.row(0, named=True)
    opt = json.loads(first["optimizer"])
    assert opt["ok"] and opt["binding"]["gross"] <= s.risk.max_gross_leverage + 1e-6
    assert first["expected_return"] > 0 and first["risk_penalty"] > 0 and first["ex_ante_vol"] > 0
    assert opt["objective"] == pytest.approx(first["expected_return"] - first["risk_penalty"] - first["cost_penalty"])
    d0 = rd.filter(pl.col("date") == first["date"])
    w = d0["optimizer_weight"].drop_nulls()
    assert w.min() >= 0 and w.max() <= s.risk.max_single_name + 1e-9
    # what the optimizer asked for is what the gate sized (here no gate step binds on the first session
    # except the whole-share rounding and the regime/vol/drawdown factors, recorded in the adjustments)
    bought = d0.filter(pl.col("decision") == rc.EXECUTE_BUY)
    assert bought.height and (bought["approved_weight"] <= bought["optimizer_weight"] + 1e-9).all()


def test_a_failed_solve_holds_the_book_with_its_reason(monkeypatch):
    monkeypatch.setattr(op, "_solve", lambda *a, **k: ("NumericalError", None, 7))
    s, out = _book("kelly_mv")
    assert out.orders.height == 0  # flat book, every solve failed: nothing is bought
    assert set(out.portfolio["optimizer_status"].to_list()) <= {"NumericalError", "NoTradableNames"}
    rd = out.risk_decisions.filter(pl.col("optimizer_weight").is_not_null())
    assert rd.height and all(rc.OPTIMIZER_FAILED in c for c in rd["reason_codes"].to_list())
    assert any(rc.OPTIMIZER_FAILED in w for w in out.portfolio["warnings"].to_list())
