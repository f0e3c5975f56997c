"""The book: one multi-asset (risk_decisions, orders, positions, portfolio) that walks the sessions in order.

Why one multi-asset: risk(t) needs positions(t-1); positions(t) needs orders(t-1); Dagster forbids
that cycle between asset keys, only self-dependency works (docs/ARCHITECTURE.md). The asset reads the
state after the session before the window and walks the window with `domain.portfolio.run_book`.

The body, one concern per module:
- book_inputs.py    reads: the state before the window, each session's inputs, provenance;
- book_walk.py      `write_book`: read -> run the book block by block -> write -> audit (no Dagster);
- book_writes.py    the five tables' window replace (one transaction per table, or per block);
- book_checks.py    the three blocking checks;
- book_audit.py     every final decision, order and fill into audit_log;
- book_metadata.py  the MaterializeResults and check results.
"""

from __future__ import annotations


import dagster as dg

from trading_assets.defs.book_checks import (CHECK_DECISIONS_WITHIN_LIMITS, CHECK_POSITIONS_MATCH_FILLS,
                                             CHECK_UNIQUE_ORDER_IDS)
from trading_assets.brokers import get_broker
from trading_assets.defs import live as live_session
from trading_assets.defs.book_inputs import CVAR_LOOKBACK_SESSIONS, cycle_id_for
from trading_assets.defs.book_metadata import results
from trading_assets.defs.book_walk import write_book
from trading_assets.defs.book_writes import BOOK_TABLES
from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, lookback, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.settings import Settings

__all__ = ["book", "BOOK_TABLES", "CHECK_DECISIONS_WITHIN_LIMITS", "CHECK_UNIQUE_ORDER_IDS",
           "CHECK_POSITIONS_MATCH_FILLS", "book_settings"]


def book_settings(pipeline: PipelineConfig) -> Settings:
    """The run's one Settings (paper/live mode included, see PipelineConfig): the same object, so the
    same settings hash and cycle_id, as every other asset of the run. (A copy with the mode replaced
    here gave risk_decisions and orders another cycle_id than decisions and cycle_meta in live mode.)"""
    return pipeline.settings()


@dg.multi_asset(
    name="book",
    specs=[
        dg.AssetSpec(
            "risk_decisions",
            group_name="decisions",
            description=(
                "FINAL decision per (session, symbol) after the risk gate (domain/risk.py). Path dependent: the "
                "book (this and orders, positions, portfolio) starts each window from its own state at the previous "
                "session and refuses a window whose previous session is missing."
            ),
            deps=[
                dg.AssetDep("meta_decisions", partition_mapping=SAME_SESSION),
                dg.AssetDep("agent_outputs", partition_mapping=SAME_SESSION),  # the GARCH sigma for vol scaling
                dg.AssetDep("features", partition_mapping=lookback(CVAR_LOOKBACK_SESSIONS)),
                dg.AssetDep("price_history", partition_mapping=SAME_SESSION),
                dg.AssetDep("universe"),
            ],
        ),
        dg.AssetSpec("orders", group_name="portfolio", deps=["risk_decisions"],
                     description="Orders decided at t (tables orders + fills: paper fills at the open of t+1)."),
        dg.AssetSpec(
            "positions",
            group_name="portfolio",
            description="Holdings at each close after the session's fills.",
            deps=[
                "orders",
                dg.AssetDep("price_history", partition_mapping=SAME_SESSION),
                dg.AssetDep("corporate_actions", partition_mapping=SAME_SESSION),
            ],
        ),
        dg.AssetSpec(
            "portfolio",
            group_name="portfolio",
            description="NAV, daily return, drawdown, exposures and the trading state per session.",
            deps=["positions"],
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(CHECK_DECISIONS_WITHIN_LIMITS, asset="risk_decisions", blocking=True,
                          description="one final decision per symbol, within every limit"),
        dg.AssetCheckSpec(CHECK_UNIQUE_ORDER_IDS, asset="orders", blocking=True, description="no two orders share an id"),
        dg.AssetCheckSpec(CHECK_POSITIONS_MATCH_FILLS, asset="positions", blocking=True,
                          description="previous positions x split ratio + fills = current positions"),
    ],
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    can_subset=False,
)
def book(context, warehouse: WarehouseResource, pipeline: PipelineConfig):
    settings = book_settings(pipeline)
    _, _, sessions = window_of(context)
    wh = warehouse.get()
    mode_live = settings.execution.mode == "live"
    live = None
    if mode_live or pipeline.dry_run:
        live = live_session.LiveSession(wh, None, context.run.run_id, cycle_id_for(sessions[-1], settings), sessions[-1],
                                        pipeline.dry_run, settings.execution.cash_tolerance, log=context.log.info)
    # refuses live mode without a broker or its keys before anything is written
    broker = get_broker(settings, on_event=live.on_event) if live is not None else get_broker(settings)
    if mode_live and hasattr(broker, "submit"):  # a real broker: reconcile with it, send to it
        live_session.check_window(sessions, not pipeline.dry_run)
        live.broker = broker
    elif not pipeline.dry_run:
        live = None  # a simulated live broker (a test's): nothing to reconcile with or send to
    written = write_book(wh, settings, broker, sessions, context.run.run_id,
                         list(pipeline.symbols) or None, live=live)  # read inputs, run the book, write, audit, send
    yield from results(written, settings, broker, sessions)
