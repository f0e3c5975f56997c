"""The data router: a Thompson-sampling bandit over the configured providers, with per-symbol fallback.

Order of providers for one request (window [start, end]):
    for each provider p, from its last `history_window` rows of provider_metrics:
        s_p = sum of served shares  (symbols_served / symbols_requested; 0 for a failed attempt)
        f_p = sum of (1 - served share)
        q_p = mean quality of its successful attempts (1.0 with no history: optimistic start)
        L_p = median latency of its attempts in seconds, from the history (0.0 with none)
        score_p = theta_p * q_p - latency_cost_per_s * L_p,   theta_p ~ Beta(1 + s_p, 1 + f_p)
    providers are tried in decreasing score (ties: configured order).
The sampler is numpy's default_rng(SeedSequence([seed, start.toordinal(), end.toordinal()])), so the
same seed, window and metrics history always give the same order.

Determinism: latency changes from run to run, so the latency measured DURING a route never
influences that route's order; it enters only through the recorded history (a median, insensitive
to one slow call). Given the same history, the order - and so every output row - is identical; only
the latency_ms column of the new metrics rows varies (ts/run_id are added by the caller).

Fallback: the first provider is asked for every symbol; each next provider only for the symbols
not yet served (failed, missing, or rejected below); routing stops when all are served. A response is
checked before any of it is used:
- a frame lacking a BAR_SCHEMA column (partial columns) -> every symbol of that attempt fails with
  MALFORMED_RESPONSE;
- per symbol: an all-NaN/null price row (open, high, low, close) or a price column null on every
  row of a symbol with more than one row -> that symbol fails with MALFORMED_RESPONSE and falls
  back (a single null field on a real bar is kept: a quality flag, not a transport failure).
Actions come from the provider that served the symbol's bars (price_factor conventions differ).
Only the providers given are ever asked: a synthetic provider takes part only when configured, and
every row carries its provider and is_synthetic flag.
Duplicated (date, symbol) rows: the first is kept and `duplicate_count` counts the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    EMPTY_RESPONSE,
    MALFORMED_RESPONSE,
    NETWORK_ERROR,
    PARTIAL_COVERAGE,
    RATE_LIMITED,
    TIMEOUT,
    UNEXPECTED_ERROR,
    FetchResult,
    Provider,
    ProviderError,
    check_window,
    validate_symbols,
)

log = logging.getLogger(__name__)

ROUTED_BAR_SCHEMA: dict[str, pl.DataType] = {
    **BAR_SCHEMA,
    "provider": pl.String(),
    "is_synthetic": pl.Boolean(),
    "duplicate_count": pl.Int32(),
}
ROUTED_ACTION_SCHEMA: dict[str, pl.DataType] = {**ACTION_SCHEMA, "provider": pl.String()}
# provider_metrics columns without ts / run_id (store/schema/14_provider_metrics.sql)
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "provider": pl.String(),
    "window_start": pl.Date(),
    "window_end": pl.Date(),
    "symbols_requested": pl.Int32(),
    "symbols_served": pl.Int32(),
    "rows": pl.Int32(),
    "success": pl.Boolean(),
    "failure_reason": pl.String(),
    "latency_ms": pl.Float64(),
    "quality": pl.Float64(),
}
_PRICES = ("open", "high", "low", "close")

DEFAULT_LATENCY_COST_PER_S = 0.01  # score lost per second of median latency (a 10 s provider: -0.1)
DEFAULT_HISTORY_WINDOW = 200  # attempts per provider the bandit remembers (adapts to change)


@dataclass(frozen=True)
class RouteResult:
    bars: pl.DataFrame  # ROUTED_BAR_SCHEMA, sorted by (date, symbol)
    actions: pl.DataFrame  # ROUTED_ACTION_SCHEMA, sorted by (date, symbol, action)
    metrics: pl.DataFrame  # METRICS_SCHEMA, one row per attempt, in the order tried
    unserved: tuple[str, ...]  # symbols no provider served (quality: NO_PROVIDER)
    order: tuple[str, ...] = ()  # the sampled provider order
    failures: dict | None = None  # symbol -> ((provider, reason), ...) for every symbol that failed somewhere


@dataclass(frozen=True)
class ArmStats:
    provider: str
    successes: float
    failures: float
    quality: float
    latency_s: float


def empty_metrics() -> pl.DataFrame:
    return pl.DataFrame(schema=METRICS_SCHEMA)


def arm_stats(history: pl.DataFrame | None, providers: Sequence[str], window: int = DEFAULT_HISTORY_WINDOW) -> list[ArmStats]:
    """Bandit statistics of each provider from provider_metrics rows (its last `window` attempts).

    Rows are taken in their stored order (ts when present) so 'last' is well defined.
    """
    out = []
    h = None
    if history is not None and history.height:
        h = history
        if "ts" in h.columns:
            h = h.sort("ts", maintain_order=True, nulls_last=False)
    for name in providers:
        rows = h.filter(pl.col("provider") == name).tail(window) if h is not None else None
        if rows is None or rows.height == 0:
            out.append(ArmStats(name, 0.0, 0.0, 1.0, 0.0))
            continue
        req = rows["symbols_requested"].cast(pl.Float64).fill_null(0.0)
        served = rows["symbols_served"].cast(pl.Float64).fill_null(0.0)
        ok = rows["success"].fill_null(False)
        share = pl.select(
            pl.when(ok & (req > 0)).then((served / req).clip(0.0, 1.0)).when(ok).then(1.0).otherwise(0.0)
        ).to_series()
        s = float(share.sum())
        f = float(rows.height - s)
        q = rows.filter(ok)["quality"].drop_nulls()
        quality = float(q.mean()) if q.len() else 1.0
        lat = rows["latency_ms"].drop_nulls()
        latency_s = float(lat.median()) / 1000.0 if lat.len() else 0.0
        out.append(ArmStats(name, s, f, quality, latency_s))
    return out


class DataRouter:
    """Routes a (symbols, window) request over the providers; see the module docstring."""

    def __init__(
        self,
        providers: Sequence[Provider],
        seed: int,
        metrics_history: pl.DataFrame | None = None,
        latency_cost_per_s: float = DEFAULT_LATENCY_COST_PER_S,
        history_window: int = DEFAULT_HISTORY_WINDOW,
    ):
        if not providers:
            raise ValueError("the router needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate provider names: {names}")
        self.providers = list(providers)
        self.seed = int(seed)
        self.metrics_history = metrics_history
        self.latency_cost_per_s = latency_cost_per_s
        self.history_window = history_window

    def order(self, start: date, end: date) -> list[Provider]:
        """The providers in the order this window tries them (deterministic given seed and history)."""
        stats = arm_stats(self.metrics_history, [p.name for p in self.providers], self.history_window)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, start.toordinal(), end.toordinal()]))
        scores = []
        for i, st in enumerate(stats):
            theta = rng.beta(1.0 + st.successes, 1.0 + st.failures)
            scores.append((-(theta * st.quality - self.latency_cost_per_s * st.latency_s), i))
        return [self.providers[i] for _, i in sorted(scores)]

    def route(self, symbols: Sequence[str], start: date, end: date) -> RouteResult:
        syms = validate_symbols(symbols)
        check_window(start, end)
        order = self.order(start, end)
        remaining = list(syms)
        bar_parts: list[pl.DataFrame] = []
        action_parts: list[pl.DataFrame] = []
        metrics: list[dict] = []
        failures: dict[str, list[tuple[str, str]]] = {}
        for provider in order:
            if not remaining:
                break
            t0 = time.perf_counter()
            reason, message, result = None, "", None
            try:
                result = provider.fetch(remaining, start, end)
            except ProviderError as exc:
                reason, message = exc.reason, str(exc)
            except Exception as exc:  # noqa: BLE001 - any provider fault becomes a recorded failure
                reason = _classify(exc)
                message = f"{type(exc).__name__}: {exc}"
            latency_ms = (time.perf_counter() - t0) * 1000.0
            served_bars, served_actions, rejected = None, None, {}
            if result is not None:
                served_bars, served_actions, rejected, frame_error = _check(result, remaining)
                if frame_error:
                    reason, message = MALFORMED_RESPONSE, frame_error
            if reason is not None:
                log.warning("provider %s failed for %d symbols: %s", provider.name, len(remaining), message)
                for s in remaining:
                    failures.setdefault(s, []).append((provider.name, reason))
                metrics.append(_metric(provider.name, start, end, len(remaining), 0, 0, False, reason, latency_ms, None))
                continue
            served = set(served_bars["symbol"].unique().to_list())
            for s, why in rejected.items():
                failures.setdefault(s, []).append((provider.name, why))
            not_served = PARTIAL_COVERAGE if served else EMPTY_RESPONSE
            for s in remaining:
                if s not in served and s not in rejected:
                    failures.setdefault(s, []).append((provider.name, not_served))
            quality = _quality(served_bars)
            n_served = len(served)
            metrics.append(
                _metric(
                    provider.name,
                    start,
                    end,
                    len(remaining),
                    n_served,
                    served_bars.height,
                    n_served > 0,
                    None if n_served == len(remaining) else (PARTIAL_COVERAGE if n_served else _dominant(rejected)),
                    latency_ms,
                    quality,
                )
            )
            if n_served:
                bar_parts.append(
                    _dedupe(served_bars).with_columns(
                        pl.lit(provider.name).alias("provider"), pl.lit(bool(provider.is_synthetic)).alias("is_synthetic")
                    )
                )
                action_parts.append(served_actions.with_columns(pl.lit(provider.name).alias("provider")))
            remaining = [s for s in remaining if s not in served]

        bars = (
            pl.concat(bar_parts).select(list(ROUTED_BAR_SCHEMA)).cast(ROUTED_BAR_SCHEMA)
            if bar_parts
            else pl.DataFrame(schema=ROUTED_BAR_SCHEMA)
        ).sort(["date", "symbol"])
        actions = (
            pl.concat(action_parts).select(list(ROUTED_ACTION_SCHEMA)).cast(ROUTED_ACTION_SCHEMA)
            if action_parts
            else pl.DataFrame(schema=ROUTED_ACTION_SCHEMA)
        )
        # one row per (date, symbol, action) - the table's key; the provider's first is kept
        actions = actions.unique(["date", "symbol", "action"], keep="first", maintain_order=True).sort(
            ["date", "symbol", "action"]
        )
        metrics_frame = pl.DataFrame(metrics, schema=METRICS_SCHEMA, orient="row") if metrics else empty_metrics()
        unserved = tuple(sorted(remaining))
        return RouteResult(
            bars=bars,
            actions=actions,
            metrics=metrics_frame,
            unserved=unserved,
            order=tuple(p.name for p in order),
            failures={s: tuple(v) for s, v in sorted(failures.items())},
        )


def _classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
        return TIMEOUT
    if isinstance(exc, OSError):
        return NETWORK_ERROR
    if type(exc).__name__ == "YFRateLimitError":
        return RATE_LIMITED
    return UNEXPECTED_ERROR


def _dominant(rejected: dict[str, str]) -> str:
    """Reason of an attempt that raised nothing yet served no symbol."""
    return MALFORMED_RESPONSE if rejected else EMPTY_RESPONSE


def _metric(provider, start, end, requested, served, rows, success, reason, latency_ms, quality) -> dict:
    return {
        "provider": provider,
        "window_start": start,
        "window_end": end,
        "symbols_requested": requested,
        "symbols_served": served,
        "rows": rows,
        "success": success,
        "failure_reason": reason,
        "latency_ms": latency_ms,
        "quality": quality,
    }


def _check(result: FetchResult, requested: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str], str]:
    """(usable bars, their actions, rejected symbol -> reason, frame-level error or "")."""
    bars, actions = result.bars, result.actions
    missing_cols = [c for c in BAR_SCHEMA if c not in bars.columns]
    if missing_cols:
        return bars.clear(), actions.clear(), {}, f"{result.provider}: response lacks column(s) {', '.join(missing_cols)}"
    try:
        bars = bars.select(list(BAR_SCHEMA)).cast(BAR_SCHEMA)
    except Exception as exc:  # noqa: BLE001
        return bars.clear(), actions.clear(), {}, f"{result.provider}: bar columns of the wrong type: {exc}"
    missing_act = [c for c in ACTION_SCHEMA if c not in actions.columns]
    if missing_act:
        return bars.clear(), actions.clear(), {}, f"{result.provider}: actions lack column(s) {', '.join(missing_act)}"
    actions = actions.select(list(ACTION_SCHEMA)).cast(ACTION_SCHEMA)
    wanted = set(requested)
    # a provider may only answer for what it was asked (anything else would bypass the fallback order)
    bars = bars.filter(pl.col("symbol").is_in(requested))
    actions = actions.filter(pl.col("symbol").is_in(requested))
    nullish = [(pl.col(c).is_null() | pl.col(c).is_nan()) for c in _PRICES]
    per_symbol = bars.group_by("symbol").agg(
        pl.all_horizontal(nullish).any().alias("nan_row"),
        (pl.len() > 1).alias("multi"),
        *[n.all().alias(f"none_{c}") for n, c in zip(nullish, _PRICES)],
    )
    bad = per_symbol.filter(
        pl.col("nan_row") | (pl.col("multi") & pl.any_horizontal([pl.col(f"none_{c}") for c in _PRICES]))
    )["symbol"].to_list()
    rejected = {s: MALFORMED_RESPONSE for s in bad if s in wanted}
    if rejected:
        bars = bars.filter(~pl.col("symbol").is_in(list(rejected)))
        actions = actions.filter(~pl.col("symbol").is_in(list(rejected)))
    served = bars["symbol"].unique()
    actions = actions.filter(pl.col("symbol").is_in(served.to_list()))
    return bars, actions, rejected, ""


def _dedupe(bars: pl.DataFrame) -> pl.DataFrame:
    """Keep the first row of each (date, symbol) in delivery order; count the extra copies."""
    return (
        bars.with_columns((pl.len().over(["date", "symbol"]) - 1).cast(pl.Int32).alias("duplicate_count"))
        .unique(["date", "symbol"], keep="first", maintain_order=True)
    )


def _quality(bars: pl.DataFrame) -> float | None:
    """Share of rows with finite positive open/high/low/close and low <= high (None with no rows)."""
    if bars.height == 0:
        return None
    ok = pl.all_horizontal(
        [pl.col(c).is_not_null() & pl.col(c).is_finite() & (pl.col(c) > 0) for c in _PRICES]
    ) & (pl.col("low") <= pl.col("high"))
    return float(bars.select(ok.fill_null(False).mean()).item())
