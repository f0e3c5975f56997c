"""Champion / challenger: who of a family's variants reaches the Meta-Brain, decided at each training session.

At training session t, with RIC_v(s) the daily out-of-sample rank IC of variant v on label date s
(oos.daily_rank_ic), for each challenger c, over the label dates s where both c and the champion k have
a value and whose label became known in the last W = promotion_window sessions up to t
(t - W sessions < known_at(s) <= t, the window of oos.rolling_ic_asof),

    d_s = RIC_c(s) - RIC_k(s)
    t_c = mean(d) / (sd(d) / sqrt(n))          (paired t-statistic, sd with ddof 1; n = those dates)

The challenger with the largest t_c replaces the champion when t_c >= promotion_t and
n >= promotion_min_sessions (action "promote"; the old champion becomes a shadow challenger);
otherwise the champion stays ("keep"). With no decision before, the family's first variant is the
champion ("initial"). The window counts sessions of label knowledge, not values: "the last W common
values" would reach further back when values are missing (a variant not scored for a while), and how far
back would depend on where a run's read began, so a range run and the daily runs it replays could decide
differently.

A family that starts as a shadow (`starts_as_shadow`, the deep ones) has no champion at first: every
variant is scored and evaluated, none reaches the Meta-Brain ("shadow"). At a training session its
variants are compared by the same paired t-statistic with the champion of its `incumbent` family (the
gradient-boosted model it competes with); the best one with t >= promotion_t over
n >= promotion_min_sessions becomes the family's champion ("enter"). A champion of such a family goes
back to shadow when the incumbent's champion beats it by the same rule ("demote"); otherwise its own
variants compete as above.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date

import polars as pl

from trading_assets.domain import calendar
from trading_assets.settings import ModelSettings


def paired_t(daily: pl.DataFrame, challenger: str, champion: str, t: date, window: int) -> tuple[float | None, int, float | None, float | None]:
    """(t-statistic, n, mean IC of the challenger, mean IC of the champion) over the common label dates
    whose labels became known in the last `window` sessions up to t (t - window sessions < known_at <= t).
    daily: agent, date, known_at, rank_ic."""
    since = calendar.lookback_start(t, window)  # t - window sessions (excluded), as oos.rolling_ic_asof
    known = daily.filter((pl.col("known_at") <= t) & (pl.col("known_at") > since))
    a = known.filter(pl.col("agent") == challenger).select("date", c=pl.col("rank_ic"))
    b = known.filter(pl.col("agent") == champion).select("date", k=pl.col("rank_ic"))
    j = a.join(b, on="date", how="inner").sort("date")
    n = j.height
    if n < 2:
        return None, n, None, None
    d = (j["c"] - j["k"]).to_numpy()
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    stat = mean / (sd / math.sqrt(n)) if sd > 1e-12 else None
    return stat, n, float(j["c"].mean()), float(j["k"].mean())


def decide(family: str, variants: Sequence[str], champion: str | None, daily: pl.DataFrame, t: date, settings: ModelSettings) -> dict:
    """The family's decision at training session t (a model_promotions row, without run_id)."""
    if champion is None or champion not in variants:
        return {"date": t, "family": family, "champion": variants[0], "previous": champion, "action": "initial", "best_challenger": None,
                "t_stat": None, "n_sessions": 0, "champion_ic": None, "challenger_ic": None, "details": "{}"}  # fmt: skip
    details = {}
    best = None
    for c in variants:
        if c == champion:
            continue
        stat, n, ic_c, ic_k = paired_t(daily, c, champion, t, settings.promotion_window)
        details[c] = {"t": stat, "n": n, "challenger_ic": ic_c, "champion_ic": ic_k}
        if stat is not None and n >= settings.promotion_min_sessions and (best is None or stat > details[best]["t"]):
            best = c
    promote = best is not None and details[best]["t"] >= settings.promotion_t
    pick = details.get(best, {}) if best else {}
    return {
        "date": t, "family": family, "champion": best if promote else champion, "previous": champion,
        "action": "promote" if promote else "keep", "best_challenger": best, "t_stat": pick.get("t"), "n_sessions": pick.get("n", 0),
        "champion_ic": pick.get("champion_ic"), "challenger_ic": pick.get("challenger_ic"),
        "details": json.dumps(details, sort_keys=True),
    }  # fmt: skip


def _row(t: date, family: str, champion: str | None, previous: str | None, action: str, best: str | None, pick: dict, details: dict) -> dict:
    return {
        "date": t, "family": family, "champion": champion, "previous": previous, "action": action, "best_challenger": best,
        "t_stat": pick.get("t"), "n_sessions": pick.get("n", 0), "champion_ic": pick.get("champion_ic"),
        "challenger_ic": pick.get("challenger_ic"), "details": json.dumps(details, sort_keys=True),
    }  # fmt: skip


def decide_shadow_family(family: str, variants: Sequence[str], champion: str | None, incumbent: str | None, daily: pl.DataFrame,
                         t: date, settings: ModelSettings) -> dict:
    """The decision at training session t for a family that starts as a shadow (module docstring)."""
    if champion is not None and champion in variants:
        if incumbent is not None:
            stat, n, ic_i, ic_c = paired_t(daily, incumbent, champion, t, settings.promotion_window)
            if stat is not None and n >= settings.promotion_min_sessions and stat >= settings.promotion_t:
                pick = {"t": stat, "n": n, "champion_ic": ic_c, "challenger_ic": ic_i}
                return _row(t, family, None, champion, "demote", incumbent, pick, {incumbent: pick})
        return decide(family, variants, champion, daily, t, settings)
    details: dict = {}
    best = None
    if incumbent is not None:
        for v in variants:
            stat, n, ic_v, ic_i = paired_t(daily, v, incumbent, t, settings.promotion_window)
            details[v] = {"t": stat, "n": n, "challenger_ic": ic_v, "champion_ic": ic_i}
            if stat is not None and n >= settings.promotion_min_sessions and (best is None or stat > details[best]["t"]):
                best = v
    enter = best is not None and details[best]["t"] >= settings.promotion_t
    return _row(t, family, best if enter else None, None, "enter" if enter else "shadow", best, details.get(best, {}) if best else {}, details)
