"""The one Definitions object: every asset, check, resource, job, schedule and sensor."""

from __future__ import annotations

import dagster as dg

from trading_assets.defs import (
    automation,
    book,
    decisions,
    evaluation_plots,
    features,
    labels,
    market_data,
    models,
    performance,
    quality,
    reference,
    signal_quality,
    signals,
    summary,
)
from trading_assets.defs.resources import default_resources

STAGE_MODULES = [reference, market_data, quality, features, models, signals, decisions, book, summary, labels, performance, signal_quality,
                 evaluation_plots]

all_assets = dg.load_assets_from_modules(STAGE_MODULES)
all_checks = dg.load_asset_checks_from_modules(STAGE_MODULES)

defs = dg.Definitions(
    assets=all_assets,
    asset_checks=[*all_checks, *automation.CHECKS],
    resources=default_resources(),
    jobs=automation.JOBS,
    schedules=automation.SCHEDULES,
    sensors=automation.SENSORS,
    # In process: one run = one process = one DuckDB writer (UI-launched runs included).
    executor=automation.EXECUTOR,
)
