"""`trading-cycle report --start D --end D [--out FILE.html]`: a one-file HTML tear sheet of a period.

Reads the warehouse read-only (as explain does: it waits for a writer's lock up to
OpsSettings.reader_lock_timeout_s, then says so): performance (daily figures), performance_metrics
(since inception as of the last session), performance_attribution and, when the table exists,
signal_quality. Writes one HTML file (images base64-embedded, no external resource) and prints a
short text summary on stdout.

Sections: the book vs the benchmark and the equal-weight universe over the period (metrics of the
period's daily returns, domain/evaluation/performance.py) and since inception; NAV vs benchmarks on a
log scale with the drawdown underneath; monthly returns heatmap; costs and turnover; PnL by sector
and by decision; signal quality per source (rank IC, ICIR, t, hit rate, quintile spread over the
period's labels) with the rolling rank IC and quintile spread plots of reporting/signal_plots.py
when present.
"""

from __future__ import annotations

import html
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from trading_assets.domain.evaluation import performance as perf
from trading_assets.reporting import plots
from trading_assets.reporting import tables as tb
from trading_assets.store.warehouse import Warehouse

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ReportError(Exception):
    """Nothing to report (no warehouse, no performance rows in the period): one clear line."""


@dataclass
class Report:
    start: date
    end: date
    benchmark: str
    period: pl.DataFrame  # period_metrics
    inception: pl.DataFrame  # performance_metrics rows (inception horizon) at the end
    attribution: pl.DataFrame  # dimension, bucket, pnl, contribution summed over the period
    signals: pl.DataFrame  # signal_summary
    images: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _tables(wh: Warehouse) -> set[str]:
    return set(wh.read("SELECT table_name FROM information_schema.tables")["table_name"].to_list())


def signal_rows(wh: Warehouse, start: date, end: date, have: set[str]) -> pl.DataFrame:
    """signal_quality rows of label dates in [start, end] known by end (empty when the table is absent)."""
    if "signal_quality" not in have:
        return pl.DataFrame()
    cols = set(wh.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'signal_quality'")
               ["column_name"].to_list())
    known = " AND known_at <= ?" if "known_at" in cols else ""
    return wh.read(f"SELECT * FROM signal_quality WHERE date BETWEEN ? AND ?{known} ORDER BY date",
                   [start, end, end] if known else [start, end])


def build_report(wh: Warehouse, start: date, end: date) -> Report:
    if not wh.db_path.exists():
        raise ReportError(f"no warehouse at {wh.db_path}: run a cycle first (trading-cycle --test)")
    have = _tables(wh)
    if "performance" not in have:
        raise ReportError("the warehouse has no performance table: materialize the `performance` asset first")
    daily = wh.read("SELECT * FROM performance WHERE date BETWEEN ? AND ? ORDER BY date", [start, end])
    if daily.height == 0:
        span = wh.read("SELECT min(date) AS a, max(date) AS b FROM performance").row(0)
        raise ReportError(f"no performance rows in {start}..{end} (the table covers {span[0]}..{span[1]})")
    benchmark = str(daily["benchmark"].drop_nulls()[-1]) if daily["benchmark"].drop_nulls().len() else "benchmark"
    last = daily["date"][-1]
    inception = wh.read("SELECT * FROM performance_metrics WHERE date = ? AND horizon = 'inception' ORDER BY "
                        "CASE series WHEN 'book' THEN 0 WHEN 'book_gross' THEN 1 WHEN 'benchmark' THEN 2 ELSE 3 END", [last])
    attribution = wh.read(
        "SELECT dimension, bucket, sum(pnl) AS pnl, sum(contribution) AS contribution FROM performance_attribution "
        "WHERE date BETWEEN ? AND ? GROUP BY ALL ORDER BY dimension, pnl DESC", [start, end])
    sq = signal_rows(wh, start, end, have)
    rep = Report(start=daily["date"][0], end=last, benchmark=benchmark, period=tb.period_metrics(daily),
                 inception=inception, attribution=attribution, signals=tb.signal_summary(sq) if sq.height else pl.DataFrame())
    pdaily = tb.period_daily(daily)
    rep.images["nav"] = plots.nav_vs_benchmarks(pdaily, benchmark, f"Growth of 1, {rep.start} .. {rep.end}")
    rep.images["monthly"] = plots.monthly_heatmap(perf.monthly_returns(daily))
    if sq.height:
        try:
            from trading_assets.reporting import signal_plots
        except ImportError:
            rep.notes.append("signal plots: reporting/signal_plots.py is not installed in this build")
        else:
            for name in ("rolling_rank_ic", "quintile_spread"):
                fn = getattr(signal_plots, name, None)
                if fn is not None:
                    out = fn(sq)
                    rep.images[name] = out if isinstance(out, bytes) else plots.png_bytes(out)
    elif "signal_quality" not in have:
        rep.notes.append("signal quality: the warehouse has no signal_quality table (materialize the asset)")
    return rep


def text_summary(rep: Report) -> str:
    lines = [f"Report {rep.start} .. {rep.end} (benchmark {rep.benchmark})"]
    h, b = tb.rows_of(rep.period.with_columns(pl.col("series").map_elements(
        lambda s: tb.series_name(s, rep.benchmark), return_dtype=pl.String)),
        [c for c in tb.PERF_COLUMNS if c[0] in ("cum_return", "cagr", "volatility", "sharpe", "max_drawdown",
                                                "turnover_annual", "cost_fraction")], ("series", "series"))
    lines.append(tb.text_table(h, b))
    if rep.signals.height:
        s = rep.signals.filter(pl.col("horizon") == rep.signals["horizon"].min())
        h, b = tb.rows_of(s, [c for c in tb.SIGNAL_COLUMNS if c[0] in ("n", "rank_ic_mean", "icir", "t")], ("source", "source"))
        lines += [f"Signal quality (horizon {s['horizon'][0]}):", tb.text_table(h, b)]
    lines += rep.notes
    return "\n".join(lines)


def _html_table(header: list[str], body: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    tr = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:13px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f0f3f7}img{max-width:100%;display:block;margin:0.5em 0 1.5em}
h1{font-size:22px}h2{font-size:17px;margin-top:1.6em;border-bottom:1px solid #ddd}.note{color:#666;font-size:12px}"""


def render_html(rep: Report) -> str:
    named = lambda f: f.with_columns(pl.col("series").map_elements(  # noqa: E731
        lambda s: tb.series_name(s, rep.benchmark), return_dtype=pl.String))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Tear sheet {rep.start} .. {rep.end}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>Tear sheet {rep.start} .. {rep.end}</h1>",
             f"<p class='note'>Benchmark {html.escape(rep.benchmark)}: adjusted close to close; equal weight: the universe's "
             "mean adjusted close-to-close return, rebalanced daily. Risk-free rate 0, 252 sessions a year. "
             "Formulas: trading_assets/domain/evaluation/performance.py.</p>",
             "<h2>Performance over the period</h2>",
             _html_table(*tb.rows_of(named(rep.period), tb.PERF_COLUMNS, ("series", "series"))),
             f"<img alt='NAV vs benchmarks' src='{_data_uri(rep.images['nav'])}'>"]
    if rep.inception.height:
        parts += [f"<h2>Since the book's first session, as of {rep.end}</h2>",
                  _html_table(*tb.rows_of(named(rep.inception), tb.PERF_COLUMNS, ("series", "series")))]
    parts += ["<h2>Monthly returns (book, net)</h2>", f"<img alt='monthly returns' src='{_data_uri(rep.images['monthly'])}'>"]
    for dim in ("sector", "decision"):
        a = rep.attribution.filter(pl.col("dimension") == dim)
        if a.height:
            parts += [f"<h2>PnL by {dim} (sum over the period; decision = the final decision of the session before)</h2>",
                      _html_table(*tb.rows_of(a, (("pnl", "PnL $", "money"), ("contribution", "sum of contributions", "pct")),
                                              ("bucket", dim)))]
    parts.append("<h2>Signal quality per source</h2>")
    if rep.signals.height:
        for hz in sorted(set(rep.signals["horizon"].to_list())):
            parts += [f"<p>horizon {hz} session(s): rank IC against the tradable forward return; ICIR = mean / std of the "
                      "daily rank IC; t = Newey-West t of the mean with h - 1 lags (overlapping labels; = ICIR x sqrt(n) "
                      "for h = 1)</p>",
                      _html_table(*tb.rows_of(rep.signals.filter(pl.col("horizon") == hz), tb.SIGNAL_COLUMNS,
                                              ("source", "source")))]
        for name in ("rolling_rank_ic", "quintile_spread"):
            if name in rep.images:
                parts.append(f"<img alt='{name}' src='{_data_uri(rep.images[name])}'>")
    else:
        parts.append("<p>No signal_quality rows in the period.</p>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in rep.notes]
    parts.append("</body></html>")
    return "\n".join(parts)


def _data_uri(png: bytes) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def report_main(start: date, end: date, out: Path | None) -> int:
    """CLI entry: write the HTML file, print the text summary; 1 when there is nothing to report or
    the warehouse stays locked."""
    from trading_assets.settings import load_ops_settings, load_settings
    from trading_assets.store.warehouse import WarehouseLockedError

    settings = load_settings()
    wh = Warehouse(settings.db_path, settings.audit_dir, lock_timeout_s=load_ops_settings().reader_lock_timeout_s)
    try:
        rep = build_report(wh, start, end)
    except (ReportError, WarehouseLockedError) as exc:
        print(f"trading-cycle report: {exc}", file=sys.stderr)
        return EXIT_FAILED
    out = out or settings.data_dir / "reports" / f"report_{rep.start}_{rep.end}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(rep), encoding="utf-8")
    print(text_summary(rep))
    print(f"HTML tear sheet: {out}")
    return EXIT_OK
