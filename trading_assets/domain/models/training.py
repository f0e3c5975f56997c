"""When a model retrains and on which rows: the cadence, the purge, the training window, the version.

Cadence (run-boundary independent): with the NYSE sessions numbered from ModelSettings.anchor
(anchor = 0), session t is a training session when index(t) % cadence == 0 (and t >= first_training).
A daily run and a five-year range run therefore retrain on exactly the same sessions.

Purge and embargo. A label of decision date s (horizon h) is realized at known_at = session s + 1 + h.
A model trained after the close of t uses the rows (features of s, label of s) with

    known_at(s) <= t                      (the label was known at t: no label from the future)
    s <= t - h - purge_extra sessions     (the purge: with purge_extra = 1 this equals known_at <= t,
                                           kept as a separate condition so that a label row whose
                                           known_at is wrong still cannot leak)
    s >= window start                     (expanding: the first session; sliding N years: t - N years)

and it first scores session t itself (the decision of t is made after its close), so between the last
training label date and the first scored session lie h + purge_extra sessions: the label of the last
training date ends (exit open) at or before t, never after.

Rows with a missing/invalid label are dropped. When more than max_train_rows remain, the training
sessions are thinned to every k-th session counted back from the last one (k = ceil(rows / max)), so
the most recent session is always kept and a session is never split (query groups stay whole).

The version of a trained model is sha256 over (family, variant, agent version, params, window first
and last label date, purge, feature_version, the training matrix and labels) -- first 16 hex digits:
the same data and parameters give the same version (and, LightGBM being deterministic, the same file).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.settings import ModelSettings

NOT_TRAINED = "NOT_TRAINED"
TRAINED = "TRAINED"


def session_index(d: date, anchor: date) -> int:
    """Number of NYSE sessions in [anchor, d) (negative before the anchor)."""
    if d >= anchor:
        return len(calendar.sessions(anchor, d)) - (1 if calendar.is_session(d) else 0)
    return -len(calendar.sessions(d, calendar.previous_session(anchor)))


def is_training_session(t: date, settings: ModelSettings, multiple: int = 1) -> bool:
    """t retrains the models: a session whose index from the anchor is a multiple of cadence x `multiple`
    (multiple > 1: a family that retrains every few cadences, e.g. the deep ones)."""
    if not calendar.is_session(t):
        return False
    if settings.first_training is not None and t < settings.first_training:
        return False
    return session_index(t, settings.anchor) % (settings.cadence * max(1, multiple)) == 0


def training_sessions(start: date, end: date, settings: ModelSettings) -> list[date]:
    """The training sessions in [start, end], in order."""
    return [t for t in calendar.sessions(start, end) if is_training_session(t, settings)]


def last_training_session(t: date, settings: ModelSettings) -> date | None:
    """The latest training session <= t (the one whose models serve t), or None."""
    days = calendar.sessions(settings.anchor if settings.anchor < t else t, t)
    for d in reversed(days[-(settings.cadence + 1):]):
        if is_training_session(d, settings):
            return d
    return None


def last_label_date(t: date, settings: ModelSettings) -> date:
    """t - horizon - purge_extra sessions: the last decision date whose label a model trained at t may use."""
    return calendar.lookback_start(t, settings.horizon + settings.purge_extra)


def window_start(t: date, history_start: date, window_years: int) -> date:
    """First decision date of the training window: history_start (expanding) or t - N years (sliding)."""
    if window_years <= 0:
        return history_start
    try:
        back = t.replace(year=t.year - window_years)
    except ValueError:  # 29 February
        back = t.replace(year=t.year - window_years, day=28)
    return max(history_start, back)


@dataclass(frozen=True)
class TrainingWindow:
    train_date: date  # t: the session the model is trained after the close of
    first: date  # first decision date allowed
    last: date  # last decision date allowed (t - h - purge_extra)


def training_window(t: date, history_start: date, settings: ModelSettings, window_years: int | None = None) -> TrainingWindow:
    years = settings.window_years if window_years is None else window_years
    return TrainingWindow(t, window_start(t, history_start, years), last_label_date(t, settings))


def training_rows(features: pl.DataFrame, labels: pl.DataFrame, window: TrainingWindow) -> pl.DataFrame:
    """The (features at s, label of s) rows a model trained at window.train_date may use.

    features: date, symbol, feature columns (already normalized). labels: date, symbol, known_at,
    fwd_return, valid (the LABELS CONTRACT, one horizon). Result: features columns + `label`,
    sorted by (date, symbol); only rows satisfying every condition of the module docstring."""
    t = window.train_date
    lab = labels.filter(
        (pl.col("known_at") <= t)
        & (pl.col("date") <= window.last)
        & (pl.col("date") >= window.first)
        & pl.col("valid").fill_null(False)
        & pl.col("fwd_return").is_finite()
    ).select("date", "symbol", label=pl.col("fwd_return"))
    x = features.filter((pl.col("date") >= window.first) & (pl.col("date") <= window.last))
    return x.join(lab, on=["date", "symbol"], how="inner").sort("date", "symbol")


def thin_sessions(rows: pl.DataFrame, max_rows: int) -> tuple[pl.DataFrame, int]:
    """Keep every k-th session counted back from the last (k = ceil(rows / max_rows)); returns (rows, k)."""
    if rows.height <= max_rows or max_rows <= 0:
        return rows, 1
    k = math.ceil(rows.height / max_rows)
    days = rows["date"].unique().sort(descending=True)
    keep = days.gather(list(range(0, days.len(), k)))
    return rows.filter(pl.col("date").is_in(keep.implode())), k


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


def model_version(
    family: str, variant: str, agent_version: str, params: dict, first_label: date, last_label: date, purge: int,
    feature_version: str, fingerprint: str,
) -> str:
    """sha256 of everything the model depends on, first 16 hex digits (see the module docstring)."""
    text = json.dumps(
        [family, variant, agent_version, params, str(first_label), str(last_label), purge, feature_version, fingerprint],
        sort_keys=True, default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
