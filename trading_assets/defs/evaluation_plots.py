"""[evaluation] evaluation_plots: the research record's pictures of a session, off the daily cycle's path.

What it draws for session t (the last session of its run's window), from the tables its parents wrote:
    nav_vs_benchmarks   the book's NAV (net and gross of costs) against the benchmark and the equal-weight
                        universe since the book's first session, log scale, drawdown underneath
                        (performance rows <= t)
    monthly_returns     the book's monthly net returns as a years x months heatmap (performance rows <= t)
    signal_quality      the rolling 63-session mean rank IC per source and the rolling quintile spread
                        (signal_quality rows known by t, the last two years)
as markdown images in the materialization's metadata (the UI shows them on the partition), and as PNG
files under <data dir>/plots/<t>/ (what a desk mails or pins; `trading-cycle report` draws the same
pictures over any period).

Why an asset of its own: drawing costs about a second of CPU on this 2-core machine (matplotlib's import
~0.25 s, the three figures ~0.5 s), more than the whole evaluation math of a daily cycle (labels,
signal_quality and performance ~0.25 s: benchmarks/evaluation_speed.py). A single-session run (the daily
schedule, `trading-cycle --date D`) therefore does not draw: performance and signal_quality record
their figures and tables only, and the `draw_evaluation_plots` sensor (defs/automation.py) requests a
run of this asset for the session as soon as such a run has succeeded, with the run's own resources
(same warehouse, same settings). A range run (a backfill) draws on its last session, where a second is
nothing: performance and signal_quality attach their pictures to that partition's materialization
themselves, and this asset (when the range selects it) draws the same ones here.

Reads only (no table is written); nothing after t. Deterministic: the same tables give the same PNG bytes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.store.warehouse import Warehouse

ASSET = "evaluation_plots"
PLOT_SESSIONS = 504  # the signal pictures' history before t (two years), as on signal_quality's materialization


def draw(wh: Warehouse, t: date, benchmark: str) -> dict[str, bytes]:
    """{name: PNG bytes} of session t's pictures (module docstring); {} when performance has no row <= t."""
    from trading_assets.domain.evaluation import performance as perf
    from trading_assets.reporting import plots
    from trading_assets.reporting.signal_plots import signal_quality_figure

    daily = wh.read("SELECT * FROM performance WHERE date <= ? ORDER BY date", [t])
    out: dict[str, bytes] = {}
    if daily.height:
        out["nav_vs_benchmarks"] = plots.nav_vs_benchmarks(daily, benchmark)
        out["monthly_returns"] = plots.monthly_heatmap(perf.monthly_returns(daily))
    history = wh.read(
        "SELECT date, source, horizon, known_at, rank_ic_mean_63, spread_mean_63 FROM signal_quality "
        "WHERE known_at BETWEEN ? AND ? ORDER BY source, horizon, date",
        [calendar.lookback_start(t, PLOT_SESSIONS), t],
    )
    if history.height:
        out["signal_quality"] = plots.png_bytes(signal_quality_figure(history))
    return out


ALT = {
    "nav_vs_benchmarks": "NAV vs benchmarks (log) and drawdown",
    "monthly_returns": "Monthly net returns",
    "signal_quality": "rolling 63-session rank IC and quintile spread per source",
}


def write_files(images: dict[str, bytes], folder: Path) -> list[str]:
    """Write each picture as <folder>/<name>.png (replacing a previous drawing of the session)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, png in images.items():
        path = folder / f"{name}.png"
        path.write_bytes(png)
        paths.append(str(path))
    return paths


@dg.asset(
    name=ASSET,
    group_name="evaluation",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[dg.AssetDep("performance", partition_mapping=SAME_SESSION),
          dg.AssetDep("signal_quality", partition_mapping=SAME_SESSION)],
    description=(
        "The session's pictures of the research record: NAV vs SPY and the equal weight (log) with the drawdown, "
        "monthly returns, rolling rank IC and quintile spread per source. Drawn after the daily run by the "
        "draw_evaluation_plots sensor (so the daily cycle never pays matplotlib), and on the last session of a "
        "range run. Files: <data dir>/plots/<session>/*.png."
    ),
    kinds={"python"},
)
def evaluation_plots(context, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = pipeline.settings()
    start, end, sessions = window_of(context)
    images = draw(warehouse.get(), end, settings.benchmark)
    files = write_files(images, settings.data_dir / "plots" / end.isoformat())
    from trading_assets.reporting.plots import markdown_image

    # The pictures go on the window's last partition only (a range run copies its metadata onto every
    # partition's event: 1,259 copies of ~400 kB otherwise).
    context.add_asset_metadata(
        {name: dg.MetadataValue.md(markdown_image(png, ALT[name])) for name, png in images.items()},
        partition_key=end.isoformat(),
    )
    return dg.MaterializeResult(metadata={
        "window": f"{start}..{end}", "drawn_for": end.isoformat(), "pictures": len(images),
        "files": dg.MetadataValue.json(files),
    })
