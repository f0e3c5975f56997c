"""[signals] agent_outputs: the six agents on each session's features -> table model_outputs.

Read the window's features (the columns the agents need) -> domain.agents.run_agents -> replace the
window's model_outputs rows -> metadata. One row per (session, symbol, agent), the benchmark included
(its row feeds the regime agent; it gets no trading decision downstream).
"""

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, run_window, sessions_without_rows, window_of
from trading_assets.defs.reference import benchmark_symbols, universe_symbols
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain.agents import AGENTS, REGIME_AGENT, agent_names, invalid_outputs, required_features, run_agents
from trading_assets.store.warehouse import Warehouse

AGENT_OUTPUTS_VALID = "agent_outputs_valid"
MODEL_OUTPUT_COLUMNS = ("date", "symbol", "agent", "mu", "sigma", "confidence", "explanation", "agent_version", "state", "run_id")


def read_features(wh: Warehouse, start, end, symbols: list[str], needed: list[str]) -> pl.DataFrame:
    """The window's features rows with the agents' columns; a clear error when a column is absent."""
    present = set(wh.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'features'")["column_name"])
    missing = [c for c in needed if c not in present]
    if missing:
        raise dg.Failure(
            f"the features table lacks the columns the agents read: {missing} (materialize `features` with the full catalog)"
        )
    return wh.read_window("features", start, end, symbols=symbols, columns=["date", "symbol", *needed], order_by="date, symbol")


@dg.asset(
    name="agent_outputs",
    group_name="signals",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[dg.AssetDep("features", partition_mapping=SAME_SESSION)],
    description=(
        "The six agents (momentum, mean_reversion, volatility, liquidity, pattern, regime) on each session's features: "
        "one row per (session, symbol, agent) with mu and sigma (next-session return, decimals), confidence in [0, 1], "
        "an explanation, the agent version, and the regime agent's market state. Table: model_outputs."
    ),
    kinds={"duckdb", "polars"},
)
def agent_outputs(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    wh.ensure_columns("model_outputs", {"state": "VARCHAR"})  # warehouses created before the column existed
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    benchmarks = benchmark_symbols(wh, settings.benchmark)
    features = read_features(wh, start, end, symbols, required_features(settings.agents))
    outputs = run_agents(features, settings.agents, benchmark=benchmarks[0] if benchmarks else None)
    outputs = outputs.with_columns(run_id=pl.lit(context.run.run_id)).select(MODEL_OUTPUT_COLUMNS).sort("date", "symbol", "agent")
    wh.replace_window("model_outputs", outputs, start, end, symbols=symbols)

    speaking = outputs.filter(pl.col("confidence") > 0)
    per_agent = (
        outputs.group_by("agent")
        .agg(rows=pl.len(), speaking=(pl.col("confidence") > 0).sum(), mean_confidence=pl.col("confidence").mean())
        .sort("agent")
    )
    last = outputs.filter(pl.col("date") == end)
    regimes = last.filter(pl.col("agent") == REGIME_AGENT)["state"].drop_nulls().unique().to_list()
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "sessions": len(sessions),
            "sessions_with_rows": outputs["date"].n_unique() if outputs.height else 0,
            "rows": outputs.height,
            "speaking_rows": speaking.height,
            "symbols": outputs["symbol"].n_unique() if outputs.height else 0,
            "agents": dg.MetadataValue.json(agent_names(AGENTS)),
            "per_agent": dg.MetadataValue.json(
                {a: {"rows": int(r), "speaking": int(s), "mean_confidence": round(float(c or 0.0), 4)} for a, r, s, c in per_agent.rows()}
            ),
            "regime_last_session": regimes[0] if regimes else "unknown",
            "benchmark": ",".join(benchmarks),
        }
    )


@dg.asset_check(
    asset="agent_outputs",
    name=AGENT_OUTPUTS_VALID,
    blocking=True,
    description=(
        "Blocking: every model_outputs row of the run's sessions keeps the contract (finite mu/sigma/confidence, sigma > 0, "
        "confidence in [0, 1], a confident row has mu and sigma) and every session has rows."
    ),
)
def agent_outputs_valid(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    rows = wh.read_window("model_outputs", start, end, order_by="date, symbol, agent")
    bad = invalid_outputs(rows)
    empty = sessions_without_rows(rows["date"].to_list(), start, end)
    return dg.AssetCheckResult(
        passed=bad.height == 0 and not empty,
        metadata={
            "rows": rows.height,
            "invalid_rows": bad.height,
            "invalid_examples": dg.MetadataValue.json(
                [[str(d), s, a, p] for d, s, a, p in bad.select("date", "symbol", "agent", "problem").head(100).rows()]
            ),
            "invalid_symbols": dg.MetadataValue.json(sorted(bad["symbol"].unique().to_list()) if bad.height else []),
            "sessions_without_rows": dg.MetadataValue.json(empty[:200]),
        },
        description=None if bad.height == 0 and not empty else f"{bad.height} invalid row(s); {len(empty)} session(s) without rows",
    )
