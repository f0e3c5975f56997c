"""Train one variant of a trained agent at a training session t, walk-forward (pure: bytes in, bytes out).

    rows     = training.training_rows(features, labels, window(t))         (purge, known_at <= t)
    silent   when the rows span fewer than ModelSettings.min_train_sessions sessions -> NOT_TRAINED
    thinned  to at most max_train_rows rows (every k-th session, training.thin_sessions)
    fit      agent.fit(rows, variant, settings, seed) -> artifact bytes; a sequence family
             (trained.lookback_sessions > 0) also gets `history`: every session's normalized rows from
             lookback sessions before the window's first label date to its last (unthinned), and its
             version hashes those rows too
    version  training.model_version(...)
    in-sample rank IC = mean over the last IS_SESSIONS training sessions of the per-session rank IC of
             the model's predictions on its own training rows (oos.daily_rank_ic), a diagnostic, never
             used to decide (the last 20 sessions, not all: predicting 100,000 rows costs as much as a
             tenth of a LightGBM fit, and a sequence model's prediction ~0.1 s per session, for a number
             nothing reads).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.domain.agents.trained import TrainedAgent, Variant, fit_family, lookback_sessions, predict_family
from trading_assets.domain.models import oos, training
from trading_assets.settings import ModelSettings


IS_SESSIONS = 20  # in-sample IC: the model's last 20 training sessions (a diagnostic)


@dataclass
class TrainResult:
    date: date
    agent: str
    family: str
    status: str
    reason: str | None = None
    version: str | None = None
    artifact: bytes | None = None
    params: str = "{}"
    window_years: int = 0
    first_label_date: date | None = None
    last_label_date: date | None = None
    purge_sessions: int = 0
    train_rows: int = 0
    train_sessions: int = 0
    thin_every: int = 1
    is_rank_ic: float | None = None
    fit_seconds: float = 0.0

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.artifact).hexdigest() if self.artifact is not None else None


def variant_params(variant: Variant, settings: ModelSettings) -> dict:
    years = settings.window_years if variant.window_years is None else variant.window_years
    return {**variant.params_dict(), "window_years": years}


def mean_rank_ic(rows: pl.DataFrame, score: np.ndarray) -> float | None:
    f = rows.select("date", "symbol", label=pl.col("label")).with_columns(score=pl.Series(score), agent=pl.lit("x"))
    lab = f.select("date", "symbol", fwd_return=pl.col("label"), known_at=pl.col("date"), valid=pl.lit(True))
    d = oos.daily_rank_ic(f.select("date", "symbol", "agent", "score"), lab, source="agent")
    return float(d["rank_ic"].mean()) if d.height else None


def train_variant(
    agent: TrainedAgent,
    variant: Variant,
    t: date,
    features: pl.DataFrame,
    labels: pl.DataFrame,
    history_start: date,
    feature_version: str,
    settings: ModelSettings,
    seed: int,
    window_rows: pl.DataFrame | None = None,
) -> TrainResult:
    """One training of `variant` at session t (see the module docstring). features: date, symbol and
    the agent's feature columns, normalized; labels: the LABELS CONTRACT columns of one horizon;
    window_rows: training.training_rows(features, labels, the variant's window) when the caller has it."""
    years = settings.window_years if variant.window_years is None else variant.window_years
    window = training.training_window(t, history_start, settings, years)
    params = variant_params(variant, settings)
    base = dict(
        date=t, agent=variant.name, family=agent.name, params=json.dumps(params, sort_keys=True, default=str), window_years=years,
        purge_sessions=settings.horizon + settings.purge_extra,
    )
    cols = list(agent.features(settings))
    if window_rows is None:  # the caller may pass training_rows(features, labels, window) shared by the variants of one window
        window_rows = training.training_rows(features, labels, window)
    rows = window_rows.select("date", "symbol", *cols, "label")
    n_sessions = rows["date"].n_unique() if rows.height else 0
    if n_sessions < settings.min_train_sessions:
        return TrainResult(
            status=training.NOT_TRAINED, train_rows=rows.height, train_sessions=n_sessions,
            reason=f"{n_sessions} label sessions in {window.first}..{window.last} known at {t} < min_train_sessions={settings.min_train_sessions}",
            **base,
        )  # fmt: skip
    rows, k = training.thin_sessions(rows, settings.max_train_rows)
    x = rows.select(cols).to_numpy().astype(np.float32)
    y = rows["label"].to_numpy().astype(np.float64)
    fingerprint = training.data_fingerprint(x, y)
    first, last = rows["date"].min(), rows["date"].max()
    history = None
    back = lookback_sessions(agent, variant)
    if back > 0:
        history = features.select("date", "symbol", *cols).filter(
            (pl.col("date") >= calendar.lookback_start(first, back)) & (pl.col("date") <= last)
        ).sort("date", "symbol")
        fingerprint = training.data_fingerprint(np.frombuffer(fingerprint.encode(), dtype=np.uint8), history.select(cols).to_numpy().astype(np.float64))
    version = training.model_version(
        agent.name, variant.name, agent.version, params, first, last, settings.horizon + settings.purge_extra, feature_version, fingerprint
    )
    t0 = time.perf_counter()
    artifact = fit_family(agent, rows, history, variant, settings, seed)
    fit_s = time.perf_counter() - t0
    last_days = rows["date"].unique().sort().tail(IS_SESSIONS)  # in-sample IC on the last IS_SESSIONS sessions
    diag = rows.filter(pl.col("date").is_in(last_days.implode()))
    in_sample, _ = predict_family(agent, artifact, diag, variant, settings, history)
    is_ic = mean_rank_ic(diag, in_sample)
    return TrainResult(
        status=training.TRAINED, version=version, artifact=artifact, first_label_date=first, last_label_date=last,
        train_rows=rows.height, train_sessions=rows["date"].n_unique(), thin_every=k, is_rank_ic=is_ic, fit_seconds=fit_s, **base,
    )  # fmt: skip
