"""[signals] agent_outputs: the nine agents on each session's features -> table model_outputs (+ agent_fits).

Read the window's features (the columns the agents need) -> domain.agents.run_agents -> replace the
window's model_outputs rows -> metadata. One row per (session, symbol, agent), the benchmark included
(its row feeds the regime agents; it gets no trading decision downstream).

The history agents (garch, hmm_regime, evt_tail) also get an AgentContext: the features' history
columns from history_sessions() sessions before each block up to the block's last session, and their
fits, read from agent_fits or computed and stored first (defs/agent_fits.py).

Blocks of sessions: every agent output row depends on its own (session, symbol) features row and, for
the regime agent, on the same session's rows only (domain/agents/base.py), so the window is read,
computed and staged one block of whole sessions at a time (`session_blocks`) with the same rows as one
pass. The staged blocks then replace the window one transaction per block
(`replace_window_in_session_blocks`): model_outputs' primary key (date, symbol, agent) makes DuckDB
hold the index of every row a transaction appends in memory until COMMIT; measured on DuckDB 2.0 at
2,000 symbols x 5 years (15 M rows): one transaction ~3.4 GB RSS (out of memory under a 2 GB
memory_limit), one per block of ~1.5 M rows ~1.1 GB, the table without the key ~1.1 GB.
"""

from collections.abc import Iterator, Sequence
from datetime import date

import dagster as dg
import polars as pl

from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, lookback, run_window, session_blocks, sessions_without_rows, window_of
from trading_assets.settings import AgentSettings
from trading_assets.defs.reference import benchmark_symbols, universe_symbols
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.domain import calendar
from trading_assets.defs.agent_fits import ensure_fits
from trading_assets.defs.trained_outputs import trained_outputs, write_model_tables
from trading_assets.domain.agents import (
    REGIME_AGENT,
    AgentContext,
    agent_names,
    enabled_agents,
    history_columns,
    history_sessions,
    invalid_outputs,
    is_fitted_agent,
    required_features,
    run_agents,
)
from trading_assets.store.staged_writes import replace_window_in_session_blocks
from trading_assets.store.warehouse import Warehouse

AGENT_OUTPUTS_VALID = "agent_outputs_valid"
HEURISTIC = "heuristic"
MODEL_OUTPUT_COLUMNS = (
    "date", "symbol", "agent", "mu", "sigma", "confidence", "explanation", "agent_version", "state", "score", "role", "model_version", "run_id",
)  # fmt: skip
TRAINED_COLUMNS = {"score": "DOUBLE", "role": "VARCHAR", "model_version": "VARCHAR"}
_HISTORY_SESSIONS = history_sessions(AgentSettings())  # the features lookback of the deps (default settings)
def check_feature_columns(wh: Warehouse, needed: Sequence[str]) -> None:
    """A clear error when the features table lacks a column the agents read."""
    present = set(wh.read("SELECT column_name FROM information_schema.columns WHERE table_name = 'features'")["column_name"])
    missing = [c for c in needed if c not in present]
    if missing:
        raise dg.Failure(
            f"the features table lacks the columns the agents read: {missing} (materialize `features` with the full catalog)"
        )


def read_features(wh: Warehouse, start, end, symbols: list[str], needed: list[str]) -> pl.DataFrame:
    """The features rows of start..end with the agents' columns; a clear error when a column is absent."""
    check_feature_columns(wh, needed)
    return wh.read_window("features", start, end, symbols=symbols, columns=["date", "symbol", *needed], order_by="date, symbol")


class _OutputStats:
    """What the metadata needs from the written rows, accumulated block by block (disjoint sessions)."""

    def __init__(self) -> None:
        self.rows = self.speaking = 0
        self.dates: set[date] = set()
        self.symbols: set[str] = set()
        self.per_agent: dict[str, list] = {}  # agent -> [rows, speaking, sum of confidence, non-null confidences]
        self.last = pl.DataFrame()

    def add(self, out: pl.DataFrame, end: date) -> None:
        self.rows += out.height
        self.speaking += out.filter(pl.col("confidence") > 0).height
        self.dates.update(out["date"].unique().to_list())
        self.symbols.update(out["symbol"].unique().to_list())
        agg = out.group_by("agent").agg(
            rows=pl.len(), speaking=(pl.col("confidence") > 0).sum(), total=pl.col("confidence").sum(), n=pl.col("confidence").count()
        )
        for a, r, s, t, n in agg.rows():
            acc = self.per_agent.setdefault(a, [0, 0, 0.0, 0])
            acc[0], acc[1], acc[2], acc[3] = acc[0] + r, acc[1] + s, acc[2] + (t or 0.0), acc[3] + n
        last = out.filter(pl.col("date") == end)
        if last.height:
            self.last = last.select("agent", "state")


@dg.asset(
    name="agent_outputs",
    group_name="signals",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("features", partition_mapping=lookback(_HISTORY_SESSIONS)),
        dg.AssetDep("model_training", partition_mapping=SAME_SESSION),
        dg.AssetDep("labels", partition_mapping=SAME_SESSION),
    ],
    description=(
        "The nine heuristic and statistical agents (momentum, mean_reversion, volatility, liquidity, pattern, regime; "
        "garch, hmm_regime, evt_tail on trailing history and their cadence fits, table agent_fits) and every trained "
        "model variant (champions and shadow challengers: gbm_cross_section, gbm_ranker, trained_momentum) on each session's "
        "features: one row per (session, symbol, agent) with mu and sigma (next-session return, decimals), confidence in "
        "[0, 1], an explanation, the agent version, the regime agents' market state, a trained model's raw score, role "
        "(heuristic | champion | shadow) and model version. Tables: model_outputs, agent_fits, model_versions, model_promotions."
    ),
    kinds={"duckdb", "polars"},
)
def agent_outputs(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    wh.ensure_columns("model_outputs", {"state": "VARCHAR", **TRAINED_COLUMNS})  # warehouses created before the columns existed
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    benchmarks = benchmark_symbols(wh, settings.benchmark)
    agents = enabled_agents(settings.agents)  # minus settings.agents.disabled (an ablation run)
    needed = required_features(settings.agents, agents)
    hist_cols = history_columns(settings.agents, agents)
    check_feature_columns(wh, [*needed, *hist_cols])
    stats = _OutputStats()
    # trained agents first: a missing or corrupt model artifact fails the run here, before any write
    tradable = [s for s in symbols if s not in set(benchmarks)]
    trained = trained_outputs(wh, settings, sessions, tradable, context.run.run_id)
    learned = trained["outputs"]
    bench = benchmarks[0] if benchmarks else None
    fits, fit_stats = [], {}
    for agent in agents:
        if is_fitted_agent(agent):
            f, st = ensure_fits(wh, agent, settings.agents, sessions, symbols, bench, context.run.run_id, hist_cols)
            fits.append(f)
            fit_stats[agent.name] = st
    all_fits = pl.concat(fits) if fits else None
    n_hist = history_sessions(settings.agents, agents)

    def blocks() -> Iterator[tuple[date, date, pl.DataFrame]]:
        for lo, hi in session_blocks(sessions, len(symbols)):
            features = wh.read_window("features", lo, hi, symbols=symbols, columns=["date", "symbol", *needed], order_by="date, symbol")
            ctx = None
            if n_hist:
                history = wh.read_window("features", calendar.lookback_start(lo, n_hist), hi, symbols=symbols,
                                         columns=["date", "symbol", *hist_cols], order_by="date, symbol")
                ctx = AgentContext(history=history, fits=all_fits) if all_fits is not None else AgentContext(history=history)
            outputs = run_agents(features, settings.agents, benchmark=bench, agents=agents, context=ctx)
            del features, ctx
            outputs = outputs.with_columns(
                score=pl.lit(None, pl.Float64), role=pl.lit(HEURISTIC), model_version=pl.lit(None, pl.String), run_id=pl.lit(context.run.run_id)
            )
            mine = learned.filter((pl.col("date") >= lo) & (pl.col("date") <= hi)).with_columns(run_id=pl.lit(context.run.run_id))
            outputs = pl.concat([outputs.select(MODEL_OUTPUT_COLUMNS), mine.select(MODEL_OUTPUT_COLUMNS)], how="vertical_relaxed")
            outputs = outputs.sort("date", "symbol", "agent")
            stats.add(outputs, end)
            yield lo, hi, outputs

    replace_window_in_session_blocks(wh, "model_outputs", blocks(), start, end, symbols=symbols)
    model_meta = write_model_tables(wh, settings, trained, start, end, context.run.run_id)

    regimes = []
    for regime_agent in (*settings.meta.regime_agents, REGIME_AGENT):  # the Meta-Brain's priority: the HMM, then the heuristic
        if stats.last.height and not regimes:
            regimes = stats.last.filter(pl.col("agent") == regime_agent)["state"].drop_nulls().unique().to_list()
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "sessions": len(sessions),
            "sessions_with_rows": len(stats.dates),
            "rows": stats.rows,
            "speaking_rows": stats.speaking,
            "symbols": len(stats.symbols),
            "agents": dg.MetadataValue.json(agent_names(agents)),
            "disabled": dg.MetadataValue.json(list(settings.agents.disabled)),
            **model_meta,
            "per_agent": dg.MetadataValue.json(
                {
                    a: {"rows": int(r), "speaking": int(sp), "mean_confidence": round(t / n if n else 0.0, 4)}
                    for a, (r, sp, t, n) in sorted(stats.per_agent.items())
                }
            ),
            "regime_last_session": regimes[0] if regimes else "unknown",
            "benchmark": ",".join(benchmarks),
            "agent_fits": dg.MetadataValue.json(fit_stats),
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
    n_symbols = wh.read("SELECT count(*) AS n FROM universe")["n"][0]
    # block by block, only the columns the contract reads (the explanations are ~2/3 of the table)
    n_rows, dates, bads = 0, set(), []
    for lo, hi in session_blocks(calendar.sessions(start, end), int(n_symbols)):
        rows = wh.read_window(
            "model_outputs", lo, hi, columns=["date", "symbol", "agent", "mu", "sigma", "confidence"], order_by="date, symbol, agent"
        )
        n_rows += rows.height
        dates.update(rows["date"].unique().to_list())
        bads.append(invalid_outputs(rows))
    bad = pl.concat(bads)  # a run's window starts on a session: at least one block
    empty = sessions_without_rows(dates, start, end)
    return dg.AssetCheckResult(
        passed=bad.height == 0 and not empty,
        metadata={
            "rows": n_rows,
            "invalid_rows": bad.height,
            "invalid_examples": dg.MetadataValue.json(
                [[str(d), s, a, p] for d, s, a, p in bad.select("date", "symbol", "agent", "problem").head(100).rows()]
            ),
            "invalid_symbols": dg.MetadataValue.json(sorted(bad["symbol"].unique().to_list()) if bad.height else []),
            "sessions_without_rows": dg.MetadataValue.json(empty[:200]),
        },
        description=None if bad.height == 0 and not empty else f"{bad.height} invalid row(s); {len(empty)} session(s) without rows",
    )
