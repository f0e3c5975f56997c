"""[decisions] meta_decisions: the Meta-Brain's pre-risk view per (session, symbol) -> table decisions.

Read the window's model_outputs, data_quality_log and halted sessions (session_quality) -> domain.meta_brain.decide -> add cycle_id and
run_id -> replace the window's decisions rows -> metadata. Stateless: the decision is relative to a
flat long-only book (docs/ARCHITECTURE.md); the risk gate compares targets with the current position.
The benchmark gets no row.

Blocks of sessions: a decision uses the same session's rows only (domain/meta_brain.py), so the window
is read, decided and staged one block of whole sessions at a time (`partitions.session_blocks`) with the
same rows as one pass, and the blocks replace the window in ONE transaction (`replace_window_in_chunks`).
"""

from collections.abc import Iterator
from datetime import date

import dagster as dg
import polars as pl

from trading_assets.store.staged_writes import replace_window_in_chunks
from trading_assets.defs.partitions import SAME_SESSION, SESSIONS, SINGLE_RUN, run_window, session_blocks, sessions_without_rows, window_of
from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.defs.calibration import window_factors
from trading_assets.defs.summary import cycle_id_for
from trading_assets.defs.reference import benchmark_symbols, universe_symbols
from trading_assets.domain import calibration, meta_brain, reasons

META_DECISIONS_FINITE = "meta_decisions_finite"
META_DECISIONS_DISAGREEMENT = "meta_decisions_disagreement"
DECISION_COLUMNS = (*meta_brain.DECISION_SCHEMA, "cycle_id", "run_id")


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def _rounded(top: list[dict]) -> list[dict]:
    return [{**t, "mu_hat": _round(t["mu_hat"], 7), "sigma_hat": _round(t["sigma_hat"]), "conviction": _round(t["conviction"], 4)} for t in top]


class _DecisionStats:
    """What the metadata needs from the written rows, accumulated block by block (disjoint sessions)."""

    def __init__(self, end: date) -> None:
        self.end = end
        self.rows = self.high_disagreement = 0
        self.symbols: set[str] = set()
        self.counts = {d: 0 for d in reasons.DECISIONS}
        self.regime_sessions: dict[str | None, int] = {}
        self.last = pl.DataFrame(schema=meta_brain.DECISION_SCHEMA)  # the window's last session

    def add(self, decided: pl.DataFrame) -> None:
        self.rows += decided.height
        self.symbols.update(decided["symbol"].unique().to_list())
        for d, c in meta_brain.decision_counts(decided).items():
            self.counts[d] += c
        for r, c in decided.group_by("date").agg(pl.col("regime").first()).group_by("regime").len().rows():
            self.regime_sessions[r] = self.regime_sessions.get(r, 0) + c
        self.high_disagreement += meta_brain.high_disagreement_rows(decided).height
        last = decided.filter(pl.col("date") == self.end)
        if last.height:
            self.last = last


@dg.asset(
    name="meta_decisions",
    group_name="decisions",
    partitions_def=SESSIONS,
    backfill_policy=SINGLE_RUN,
    deps=[
        dg.AssetDep("agent_outputs", partition_mapping=SAME_SESSION),
        dg.AssetDep("data_quality", partition_mapping=SAME_SESSION),
        dg.AssetDep("labels", partition_mapping=SAME_SESSION),  # the calibration reads labels known at t
    ],
    description=(
        "The Meta-Brain per (session, symbol): confidence-weighted ensemble mu_hat, mixture sigma_hat, disagreement "
        "Var_k(mu_k) and its penalty, robust cross-sectional z-score, fractional Kelly and the raw long-only target "
        "weight, the pre-risk decision (EXECUTE_BUY / EXECUTE_SELL / HOLD / REJECT) with reason codes, the session's "
        "regime, cycle_id and run_id. Benchmark excluded. Table: decisions."
    ),
    kinds={"duckdb", "polars"},
)
def meta_decisions(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    wh = warehouse.get()
    wh.ensure_columns("model_outputs", {"role": "VARCHAR", "score": "DOUBLE"})  # warehouses from before the trained agents
    start, end, sessions = window_of(context)
    symbols = universe_symbols(wh, pipeline)
    benchmarks = benchmark_symbols(wh, settings.benchmark)
    s_hash = settings.settings_hash()
    stats = _DecisionStats(end)
    # reliability: confidences x the agents' rolling out-of-sample rank IC factor (settings.meta.calibrate)
    factors = window_factors(wh, settings, sessions, symbols, benchmarks) if settings.meta.calibrate else None

    def blocks() -> Iterator[pl.DataFrame]:
        for lo, hi in session_blocks(sessions, len(symbols)):
            outputs = wh.read_window(
                "model_outputs", lo, hi, symbols=symbols,
                columns=["date", "symbol", "agent", "mu", "sigma", "confidence", "state", "role"], order_by="date, symbol, agent",
            )  # fmt: skip
            outputs = outputs.filter(pl.col("role").fill_null("heuristic") != "shadow").drop("role")  # shadows never reach the Meta-Brain
            if factors is not None:
                outputs = calibration.calibrate(outputs, factors.filter((pl.col("date") >= lo) & (pl.col("date") <= hi)))
            quality = wh.read_window(
                "data_quality_log", lo, hi, symbols=symbols, columns=["date", "symbol", "passed", "reason_codes"], order_by="date, symbol"
            )
            halted = wh.read("SELECT date FROM session_quality WHERE halted AND date BETWEEN ? AND ? ORDER BY date", [lo, hi])["date"]
            decided = meta_brain.decide(
                outputs, quality, settings.meta, exclude_symbols=benchmarks, halted_sessions=halted.to_list()
            )
            del outputs, quality
            decided = decided.with_columns(
                cycle_id=pl.concat_str([pl.col("date").dt.strftime("%Y-%m-%d"), pl.lit(f"-{s_hash}")]),  # = cycle_id_for(date, s_hash)
                run_id=pl.lit(context.run.run_id),
            ).select(DECISION_COLUMNS)
            stats.add(decided)
            yield decided

    replace_window_in_chunks(wh, "decisions", blocks(), start, end, symbols=symbols)
    if factors is not None:
        wh.ensure_columns("agent_calibration", {"as_of": "DATE", "ic_shrunk": "DOUBLE", "method": "VARCHAR"})  # warehouses from before the shrunk factor
        wh.replace_window("agent_calibration", factors.with_columns(run_id=pl.lit(context.run.run_id)), start, end)
    last = stats.last

    n = settings.meta.top_n
    return dg.MaterializeResult(
        metadata={
            "window": f"{start}..{end}",
            "sessions": len(sessions),
            "rows": stats.rows,
            "symbols": len(stats.symbols),
            "decision_counts": dg.MetadataValue.json(stats.counts),
            "decision_counts_last_session": dg.MetadataValue.json(meta_brain.decision_counts(last)),
            "top_buys": dg.MetadataValue.json(_rounded(meta_brain.top_decisions(last, reasons.EXECUTE_BUY, n))),
            "top_sells": dg.MetadataValue.json(_rounded(meta_brain.top_decisions(last, reasons.EXECUTE_SELL, n))),
            "regime_last_session": (last["regime"].drop_nulls().first() if last.height else None) or "unknown",
            "regime_sessions": dg.MetadataValue.json(
                {str(r): int(c) for r, c in sorted(stats.regime_sessions.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))}
            ),
            "high_disagreement_rows": stats.high_disagreement,
            "cycle_id_last_session": cycle_id_for(end, s_hash),
        }
    )


@dg.asset_check(
    asset="meta_decisions",
    name=META_DECISIONS_FINITE,
    blocking=True,
    description=(
        "Blocking: every non-REJECT decision of the run's sessions has finite mu_hat, sigma_hat, z_score, kelly_fraction and "
        "target_weight_raw (REJECT rows are null by design), and every session has rows."
    ),
)
def meta_decisions_finite(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    rows = wh.read_window("decisions", start, end, columns=["date", "symbol", "pre_risk_decision", *meta_brain.FINITE_COLUMNS], order_by="date, symbol")
    bad = meta_brain.nonfinite_rows(rows)
    empty = sessions_without_rows(rows["date"].to_list(), start, end)
    by_session = bad.group_by("date").agg(pl.col("symbol").sort()).sort("date")
    return dg.AssetCheckResult(
        passed=bad.height == 0 and not empty,
        metadata={
            "rows": rows.height,
            "non_finite_rows": bad.height,
            "non_finite_by_session": dg.MetadataValue.json({str(d): s[:50] for d, s in by_session.head(200).rows()}),
            "sessions_without_rows": dg.MetadataValue.json(empty[:200]),
        },
        description=None if bad.height == 0 and not empty else f"{bad.height} non-finite row(s); {len(empty)} session(s) without rows",
    )


@dg.asset_check(
    asset="meta_decisions",
    name=META_DECISIONS_DISAGREEMENT,
    blocking=False,
    description=(
        "Non-blocking: lists the (session, symbol) rows whose agents disagree strongly (HIGH_DISAGREEMENT: the penalty "
        "exp(-beta * Var_k(mu_k)) fell below settings.meta.high_disagreement_penalty)."
    ),
)
def meta_decisions_disagreement(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    wh = warehouse.get()
    start, end = run_window(context)
    rows = wh.read_window("decisions", start, end, columns=["date", "symbol", "disagreement", "reason_codes"], order_by="date, symbol")
    flagged = meta_brain.high_disagreement_rows(rows)
    by_symbol = flagged.group_by("symbol").agg(sessions=pl.len(), max_disagreement=pl.col("disagreement").max()).sort("symbol")
    return dg.AssetCheckResult(
        passed=flagged.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rows": rows.height,
            "flagged_rows": flagged.height,
            "flagged_symbols": dg.MetadataValue.json({s: {"sessions": int(n), "max_disagreement": float(m)} for s, n, m in by_symbol.rows()}),
            "examples": dg.MetadataValue.json([[str(d), s, float(v)] for d, s, v in flagged.select("date", "symbol", "disagreement").head(100).rows()]),
        },
    )
