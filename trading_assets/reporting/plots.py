"""PNG plots for materialization metadata and the HTML tear sheet (matplotlib, Agg backend).

Pure presentation: frames in, PNG bytes out (no dagster, no duckdb, no files). Deterministic: the
same frame gives the same bytes (no timestamp or software tag in the PNG). Shared by the
evaluation assets (performance, signal_quality) and `trading-cycle report`.

    png_bytes(fig)             render a figure (built with new_figure or any Figure)
    markdown_image(png, alt)   "![alt](data:image/png;base64,...)" for dg.MetadataValue.md / HTML
    nav_vs_benchmarks(daily)   book NAV vs benchmark(s), log scale, drawdown underneath
    monthly_heatmap(daily)     monthly net returns, years x months
"""

from __future__ import annotations

import base64
import io

import matplotlib.ticker
import numpy as np
import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Figures are built on the Agg canvas directly, never through pyplot: no display, no global figure
# registry to close, and pyplot's import (~1 s of a daily cycle on a loaded machine) is never paid.

DPI = 90
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_figure(rows: int = 1, height_ratios: list[float] | None = None, width: float = 10.0, height: float = 5.0,
               sharex: bool = True) -> tuple[Figure, list]:
    """A figure (not registered with pyplot's global state) and its list of axes, one per row."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=sharex, squeeze=False,
                        gridspec_kw={"height_ratios": height_ratios} if height_ratios else None)[:, 0]
    return fig, list(axes)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (no metadata: byte-identical for identical inputs)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # zlib level 1: encoding was a fifth of the drawing time at the default level 6; the PNG is ~6% larger
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """Markdown image with the PNG inline as a data URI (the Dagster UI and browsers render it)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"


def nav_vs_benchmarks(daily: pl.DataFrame, benchmark: str = "SPY", title: str = "") -> bytes:
    """Growth of 1 for the book (net and gross of costs), the benchmark and the equal-weight universe
    on a log scale, with the book's drawdown underneath. daily: performance rows (date,
    cum_return, cum_gross_return, benchmark_cum_return, ew_cum_return, drawdown, benchmark_return,
    ew_return)."""
    fig, (ax, dd) = new_figure(2, [3.0, 1.0], height=6.0)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.94, bottom=0.06, hspace=0.08)
    d = daily.sort("date")
    x = d["date"].to_list()
    ax.plot(x, 1.0 + d["cum_return"].to_numpy(), color="#1f4e79", lw=1.6, label="book (net)")
    ax.plot(x, 1.0 + d["cum_gross_return"].to_numpy(), color="#1f4e79", lw=0.8, ls=":", label="book (gross of costs)")
    if d["benchmark_return"].is_not_null().any():
        ax.plot(x, 1.0 + d["benchmark_cum_return"].to_numpy(), color="#c55a11", lw=1.2, label=benchmark)
    if d["ew_return"].is_not_null().any():
        ax.plot(x, 1.0 + d["ew_cum_return"].to_numpy(), color="#548235", lw=1.2, label="equal weight (daily rebal.)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("growth of 1 (log)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"NAV vs benchmarks, {x[0]} .. {x[-1]}" if x else "NAV vs benchmarks")
    dd.fill_between(x, -100.0 * d["drawdown"].to_numpy(), 0.0, color="#c00000", alpha=0.5, lw=0)
    dd.set_ylabel("drawdown %")
    dd.grid(True, alpha=0.3)
    return png_bytes(fig)


def monthly_heatmap(monthly: pl.DataFrame, title: str = "Monthly net returns (%)") -> bytes:
    """Years x months heatmap of monthly returns (monthly: year, month, return), values in %."""
    years = sorted(set(monthly["year"].to_list()))
    grid = np.full((len(years), 12), np.nan)
    for y, m, v in monthly.select("year", "month", "return").iter_rows():
        grid[years.index(y), m - 1] = 100.0 * v
    height = 0.45 * max(len(years), 2) + 1.2
    fig, (ax,) = new_figure(1, width=10.0, height=height)
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - 0.45 / height, bottom=0.35 / height)
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    lim = lim if lim > 0 else 1.0  # all zero (a book that has not traded yet): a neutral scale
    ax.imshow(grid, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
    for i in range(len(years)):
        for j in range(12):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_title(title)
    return png_bytes(fig)
