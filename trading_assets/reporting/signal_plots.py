"""Pictures of the signal_quality table (matplotlib, Agg, through reporting/plots.py).

Pure presentation: a frame of signal_quality rows in, a matplotlib Figure out (render it with
plots.png_bytes). Used by the signal_quality asset's metadata and by `trading-cycle report`.

    rolling_rank_ic(rows, horizon, window)         rolling rank IC mean per source (one line each)
    quintile_spread(rows, horizon, window)         rolling mean top-minus-bottom quintile spread per source
    signal_quality_figure(rows, horizon, window)   both, stacked (what the asset attaches)
rows: signal_quality rows with date, source, horizon and the window's columns
(rank_ic_mean_W, spread_mean_W). A source whose values are all NULL is left out of the legend.
"""

from __future__ import annotations

import polars as pl
from matplotlib.figure import Figure

from trading_assets.reporting.plots import new_figure

# fixed colours per kind of source, the agents cycling through a qualitative palette (deterministic)
_SPECIAL = {"meta_brain": ("#000000", 2.0), "risk_gate": ("#c00000", 2.0)}
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def _series(rows: pl.DataFrame, horizon: int, column: str) -> list[tuple[str, list, list]]:
    if column not in rows.columns or rows.height == 0:
        return []
    data = rows.filter(pl.col("horizon") == horizon).sort("source", "date")
    out = []
    for (source,), g in data.group_by("source", maintain_order=True):
        if g[column].is_not_null().any():
            out.append((source, g["date"].to_list(), [None if v is None else v for v in g[column].to_list()]))
    return out


def _draw(ax, series: list[tuple[str, list, list]], scale: float, ylabel: str, title: str) -> None:
    i = 0
    for source, x, y in series:
        color, lw = _SPECIAL.get(source, (None, 1.0))
        if color is None:
            color, i = _PALETTE[i % len(_PALETTE)], i + 1
        ax.plot(x, [float("nan") if v is None else v * scale for v in y], color=color, lw=lw, label=source)
    ax.axhline(0.0, color="#555555", lw=0.8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if series:
        ax.legend(loc="upper left", fontsize=7, ncol=4)
    else:
        ax.text(0.5, 0.5, "no values yet (the window needs half its sessions of labels)", ha="center", va="center", transform=ax.transAxes)


def rolling_rank_ic(rows: pl.DataFrame, horizon: int = 1, window: int = 63) -> Figure:
    fig, (ax,) = new_figure(1, height=4.0)
    _draw(ax, _series(rows, horizon, f"rank_ic_mean_{window}"), 1.0, "rank IC",
          f"Rolling {window}-session mean rank IC per source (label horizon {horizon})")  # fmt: skip
    return fig


def quintile_spread(rows: pl.DataFrame, horizon: int = 1, window: int = 63) -> Figure:
    fig, (ax,) = new_figure(1, height=4.0)
    _draw(ax, _series(rows, horizon, f"spread_mean_{window}"), 1e4, "bp per label period",
          f"Rolling {window}-session mean top-minus-bottom quintile spread (excess return, horizon {horizon})")  # fmt: skip
    return fig


def signal_quality_figure(rows: pl.DataFrame, horizon: int = 1, window: int = 63) -> Figure:
    fig, (ic, spread) = new_figure(2, [1.0, 1.0], height=7.5)
    _draw(ic, _series(rows, horizon, f"rank_ic_mean_{window}"), 1.0, "rank IC",
          f"Rolling {window}-session mean rank IC per source (label horizon {horizon})")  # fmt: skip
    _draw(spread, _series(rows, horizon, f"spread_mean_{window}"), 1e4, "bp per label period",
          f"Rolling {window}-session mean top-minus-bottom quintile spread (excess return)")  # fmt: skip
    fig.autofmt_xdate()
    return fig
