"""reporting/tables.py and reporting/report.py: period figures and the signal summary by hand, the tear
sheet from a warehouse holding performance and signal_quality rows, and its clear errors."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from trading_assets.domain import calendar
from trading_assets.domain.evaluation import performance as perf
from trading_assets.reporting import report, tables


def _daily(n: int = 30) -> pl.DataFrame:
    days = calendar.sessions(date(2024, 1, 2), date(2024, 3, 28))[:n]
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, n)
    nav = 1e6 * np.cumprod(1 + r)
    portfolio = pl.DataFrame({"date": days, "nav": nav, "daily_return": r, "gross_exposure": nav * 0.5,
                              "net_exposure": nav * 0.5})
    fills = pl.DataFrame({"date": days, "symbol": ["A"] * n, "side": ["BUY"] * n, "quantity": [100.0] * n,
                          "price": [50.0] * n, "commission": [1.0] * n, "slippage_cost": [0.5] * n, "status": ["FILLED"] * n})
    bench = pl.DataFrame({"date": days, "benchmark_return": rng.normal(0, 0.01, n), "ew_return": rng.normal(0, 0.01, n),
                          "ew_count": [10] * n}, schema_overrides={"ew_count": pl.Int32})
    return perf.daily_figures(portfolio, perf.fill_totals(fills), bench)


def test_period_daily_rebases_and_period_metrics_match_the_domain():
    d = _daily()
    sub = tables.period_daily(d.slice(10))
    r = d["net_return"].to_numpy()[10:]
    assert sub["cum_return"].to_numpy() == pytest.approx(np.cumprod(1 + r) - 1)
    assert sub["drawdown"][0] == pytest.approx(max(0.0, -r[0]))
    m = tables.period_metrics(d.slice(10))
    assert m["series"].to_list() == ["book", "book_gross", "benchmark", "equal_weight"]
    book = m.row(0, named=True)
    assert book["sharpe"] == pytest.approx(np.mean(r) / np.std(r, ddof=1) * math.sqrt(252), rel=1e-9)
    assert book["turnover_annual"] == pytest.approx(np.mean(5000.0 / d["nav_prev"].to_numpy()[10:]) * 252)
    assert book["costs"] == pytest.approx(1.5 * 20) and m.row(2, named=True)["costs"] is None


def test_signal_summary_by_hand():
    sq = pl.DataFrame({"date": [date(2024, 1, 2), date(2024, 1, 3), date(2024, 1, 4)] * 2,
                       "source": ["a"] * 3 + ["b"] * 3, "horizon": [1] * 6,
                       "rank_ic": [0.1, 0.3, None, -0.05, 0.05, 0.0], "ic": [0.2, 0.2, 0.5, 0.0, 0.0, 0.0],
                       "hit_rate": [0.5, 0.7, 0.9, 0.5, 0.5, 0.5]})
    s = {r["source"]: r for r in tables.signal_summary(sq).iter_rows(named=True)}
    # a: rank IC 0.1, 0.3 (the NULL session is left out): mean 0.2, std 0.1414, ICIR sqrt(2), t = sqrt(2) * sqrt(2) = 2
    assert s["a"]["n"] == 2 and s["a"]["rank_ic_mean"] == pytest.approx(0.2)
    assert s["a"]["icir"] == pytest.approx(math.sqrt(2)) and s["a"]["t"] == pytest.approx(2.0)
    assert s["a"]["ic_mean"] == pytest.approx(0.2) and s["a"]["hit_rate_mean"] == pytest.approx(0.6)
    assert s["b"]["rank_ic_mean"] == pytest.approx(0.0, abs=1e-15) and s["b"]["t"] == pytest.approx(0.0, abs=1e-12)


def test_tear_sheet_from_a_warehouse(warehouse, tmp_path, capsys, monkeypatch):
    d = _daily()
    warehouse.replace_window("performance", d.with_columns(pl.lit("SPY").alias("benchmark")), d["date"][0], d["date"][-1])
    m = perf.metrics_frame(d, date(2023, 12, 29))
    warehouse.replace_window("performance_metrics", m, d["date"][0], d["date"][-1])
    with warehouse.connect() as con:  # signal_quality rows as the evaluation asset writes them (the other columns NULL)
        con.execute("INSERT INTO signal_quality (date, source, horizon, known_at, rank_ic, ic, kind, score_column, label, n, "
                    "universe_n, hit_n, top_n, bottom_n) SELECT *, 'agent', 'model_outputs.mu', 'excess_return', 10, 10, 10, 2, 2 "
                    "FROM (VALUES ('2024-01-03'::DATE, 'momentum', 1, '2024-01-05'::DATE, 0.1, 0.1), "
                    "('2024-01-04'::DATE, 'momentum', 1, '2024-01-08'::DATE, 0.3, 0.2), "
                    "('2024-02-13'::DATE, 'momentum', 1, '2024-02-15'::DATE, 0.9, 0.9))")  # the last: known after the end, left out
    out = tmp_path / "r.html"
    assert report.report_main(date(2024, 1, 1), date(2024, 2, 13), out) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"Report {d['date'][0]} .. 2024-02-13 (benchmark SPY)")
    assert "momentum" in text and "Signal quality (horizon 1):" in text
    page = out.read_text()
    assert page.count("data:image/png;base64,iVBOR") >= 2 and "<td>momentum</td><td>2</td>" in page
    assert "+0.2000" in page  # mean rank IC of the two rows known by the end


def test_clear_errors(warehouse, tmp_path, capsys):
    assert report.report_main(date(2024, 1, 1), date(2024, 2, 1), tmp_path / "x.html") == 1
    assert "no performance rows in 2024-01-01..2024-02-01" in capsys.readouterr().err
    with pytest.raises(report.ReportError, match="no warehouse"):
        from trading_assets.store.warehouse import Warehouse

        report.build_report(Warehouse(tmp_path / "none.duckdb"), date(2024, 1, 1), date(2024, 2, 1))
