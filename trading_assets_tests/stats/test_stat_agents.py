"""The three statistical agents (garch, hmm_regime, evt_tail) at the domain level: cadence fits,
run-boundary independence (a session alone = the same session inside a range), nothing read after t,
fallbacks said in the explanation, deterministic fits."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from trading_assets.domain import calendar
from trading_assets.domain.agents import AgentContext, run_agents
from trading_assets.domain.agents import history as hist
from trading_assets.domain.agents.evt_tail import EvtTailAgent
from trading_assets.domain.agents.garch_vol import GarchVolAgent
from trading_assets.domain.agents.hmm_regime import HmmRegimeAgent
from trading_assets.settings import AgentSettings
from trading_assets_tests.agents.helpers import NEUTRAL

S = dataclasses.replace(
    AgentSettings(),
    garch_window=150, garch_min_obs=100, garch_cadence=10,
    hmm_window=150, hmm_min_obs=100, hmm_cadence=10, hmm_seeds=2,
    evt_window=150, evt_threshold_q=0.9, evt_min_exceedances=10, evt_cadence=10,
)
AGENTS = (GarchVolAgent(), HmmRegimeAgent(), EvtTailAgent())
SYMBOLS = ["AAA", "BBB", "CCC", "SPY"]
DAYS = calendar.sessions(date(2022, 1, 3), date(2023, 3, 31))


def _history(days=DAYS, seed=1) -> pl.DataFrame:
    """GARCH-like returns with a calm and a turbulent stretch; vol_20 and px_sma_50 from them."""
    rng = np.random.default_rng(seed)
    n = len(days)
    rows = []
    for k, sym in enumerate(SYMBOLS):
        s2, r = 1e-4, np.empty(n)
        for t in range(n):
            shock = rng.standard_t(5) / np.sqrt(5 / 3)
            r[t] = np.sqrt(s2) * shock * (2.0 if 120 <= t < 180 else 1.0)
            s2 = 2e-6 + 0.08 * r[t] ** 2 + 0.9 * s2
        px = np.cumsum(r)
        ser = pl.Series(r)
        vol = (ser.rolling_std(20) * np.sqrt(252)).to_numpy()
        sma = pl.Series(np.exp(px)).rolling_mean(50).to_numpy()
        for t, d in enumerate(days):
            rows.append({"date": d, "symbol": sym, "logret_1": float(r[t]), "vol_20": vol[t],
                         "px_sma_50": np.exp(px[t]) / sma[t] - 1 if np.isfinite(sma[t]) else None})
    return pl.DataFrame(rows).with_columns(pl.col("vol_20").fill_nan(None)).sort("date", "symbol")


def _features(history: pl.DataFrame, days) -> pl.DataFrame:
    base = {k: v for k, v in NEUTRAL.items()}
    f = history.filter(pl.col("date").is_in(days)).select("date", "symbol")
    return f.with_columns(*(pl.lit(v).alias(k) for k, v in base.items()))


def _fits(history: pl.DataFrame, days, s: AgentSettings = S) -> pl.DataFrame:
    frame = history.filter(pl.col("date").is_in(days)).select("date", "symbol")
    return pl.concat([hist.fit_all(a, history, frame, s, "SPY") for a in AGENTS])


def _run(history: pl.DataFrame, days, fits, s: AgentSettings = S) -> pl.DataFrame:
    last = days[-1]
    ctx = AgentContext(history=history.filter(pl.col("date") <= last), fits=fits)
    return run_agents(_features(history, days), s, benchmark="SPY", agents=AGENTS, context=ctx)


@pytest.fixture(scope="module")
def world():
    history = _history()
    days = DAYS[200:240]
    fits = _fits(history, days)
    return history, days, fits, _run(history, days, fits)


def test_fits_exist_on_the_grid_and_speak(world):
    history, days, fits, out = world
    # staggered (the default): GARCH and EVT refit each symbol on its own phase of the 10-session grid,
    # the market-level HMM on phase 0
    for agent in ("garch", "evt_tail"):
        pairs = set(fits.filter(pl.col("agent") == agent).select("fit_date", "symbol").iter_rows())
        assert pairs == {(calendar.cadence_session(d, 10, hist.phase(s, 10)), s) for d in days for s in SYMBOLS}
    assert len({hist.phase(s, 10) for s in SYMBOLS}) > 1  # the symbols really refit on different sessions
    hmm_fits = fits.filter(pl.col("agent") == "hmm_regime")
    assert set(hmm_fits["fit_date"]) == {calendar.cadence_session(d, 10) for d in days}
    assert hmm_fits["symbol"].unique().to_list() == ["MARKET"]
    assert fits.filter(pl.col("agent") == "garch")["converged"].all()
    for agent in ("garch", "hmm_regime", "evt_tail"):
        rows = out.filter(pl.col("agent") == agent)
        assert rows.height == len(days) * len(SYMBOLS)
        assert rows.filter(pl.col("confidence") > 0).height > 0, agent
    hmm_rows = out.filter(pl.col("agent") == "hmm_regime")
    assert set(hmm_rows["state"].drop_nulls()) <= {"risk_on", "neutral", "risk_off"}
    assert hmm_rows.group_by("date").agg(pl.col("state").n_unique())["state"].max() == 1
    garch = out.filter(pl.col("agent") == "garch")
    assert garch["explanation"].str.contains("omega=").all() and garch["sigma"].is_not_null().all()


def test_a_session_alone_equals_the_session_inside_a_range(world):
    history, days, fits, out = world
    for t in (days[0], days[17], days[-1]):
        alone = _run(history, [t], fits)
        assert_frame_equal(alone, out.filter(pl.col("date") == t), check_exact=True)


def test_nothing_after_t_is_read(world):
    history, days, fits, out = world
    t = days[20]
    later = pl.col("date") > t
    changed = history.with_columns(
        logret_1=pl.when(later).then(pl.col("logret_1") * -4.0 + 0.03).otherwise(pl.col("logret_1")),
        vol_20=pl.when(later).then(pl.col("vol_20") * 3.0).otherwise(pl.col("vol_20")),
        px_sma_50=pl.when(later).then(-pl.col("px_sma_50")).otherwise(pl.col("px_sma_50")),
    )
    fits2 = _fits(changed, days)
    keep = pl.col("fit_date") <= t
    assert_frame_equal(fits2.filter(keep), fits.filter(keep), check_exact=True)
    out2 = _run(changed, days, fits2)
    assert_frame_equal(out2.filter(pl.col("date") <= t), out.filter(pl.col("date") <= t), check_exact=True)
    assert not out2.filter(pl.col("date") > t).equals(out.filter(pl.col("date") > t))


def test_fits_are_deterministic_whatever_they_are_fitted_with(world):
    history, days, fits, _ = world
    hmm_agent = AGENTS[1]
    r = hmm_agent.fit_sessions(days, S)[1]
    assert_frame_equal(hmm_agent.fit(history, [r], S, "SPY"), fits.filter((pl.col("agent") == "hmm_regime") & (pl.col("fit_date") == r)),
                       check_exact=True)
    for a in (AGENTS[0], AGENTS[2]):
        mine = fits.filter(pl.col("agent") == a.name)
        for r, sym in mine.select("fit_date", "symbol").unique().sort("fit_date", "symbol").head(3).iter_rows():
            want = mine.filter((pl.col("fit_date") == r) & (pl.col("symbol") == sym))
            # the pair alone, the pair among every symbol at r (a lockstep batch), the symbol's history alone
            alone = a.fit(history, [r], S, "SPY", symbols={r: [sym]})
            every = a.fit(history, [r], S, "SPY").filter(pl.col("symbol") == sym)
            own = a.fit(history.filter(pl.col("symbol") == sym), [r], S)
            for got in (alone, every, own):
                assert_frame_equal(got, want, check_exact=True)


def test_staggered_refits_spread_the_universe_and_keep_the_total_work():
    """Each symbol refits once every cadence sessions on its own phase (sha256(symbol) mod cadence):
    over a range the number of fits per symbol is the lockstep grid's (+-1), and a session refits
    ~1/cadence of the universe instead of all of it once in cadence sessions."""
    from trading_assets.universe import load_universe

    names = sorted(load_universe()["symbol"].to_list())
    assert len(names) > 250
    cadence = 21
    per_phase = np.bincount([hist.phase(n, cadence) for n in names], minlength=cadence)
    assert per_phase.min() > 0 and per_phase.max() <= 2 * len(names) / cadence  # no session refits more than 2/cadence
    assert hist.phase("AAPL", 21) == int(__import__("hashlib").sha256(b"AAPL").hexdigest()[:8], 16) % 21  # the documented rule
    days = calendar.sessions(date(2015, 1, 2), date(2016, 12, 30))
    frame = pl.DataFrame({"date": [d for d in days for _ in names[:60]], "symbol": names[:60] * len(days)})
    stag = hist.fit_jobs(frame, cadence, True)
    lock = hist.fit_jobs(frame, cadence, False)
    for n in names[:60]:
        k_s = sum(n in v for v in stag.values())
        k_l = sum(n in v for v in lock.values())
        assert abs(k_s - k_l) <= 1
    assert max(len(v) for v in stag.values()) < 60 and len(stag) > len(lock)


def test_lockstep_refits_when_stagger_is_off(world):
    history, days, _, _ = world
    s = dataclasses.replace(S, garch_stagger=False, evt_stagger=False)
    fits = _fits(history, days, s)
    assert set(fits["fit_date"].to_list()) == {calendar.cadence_session(d, 10) for d in days}
    g = fits.filter(pl.col("agent") == "garch")
    assert g["converged"].all() and g.height == len(SYMBOLS) * len(set(fits["fit_date"].to_list()))
    out = _run(history, days, fits, s)
    for t in (days[0], days[-1]):
        assert_frame_equal(_run(history, [t], fits, s), out.filter(pl.col("date") == t), check_exact=True)


def test_without_a_fit_garch_falls_back_to_the_trailing_sigma_and_says_so(world):
    history, days, fits, _ = world
    bad = fits.with_columns(
        converged=pl.when((pl.col("agent") == "garch") & (pl.col("symbol") == "AAA")).then(False).otherwise(pl.col("converged")),
        message=pl.when((pl.col("agent") == "garch") & (pl.col("symbol") == "AAA")).then(pl.lit("not converged after 100 iterations"))
        .otherwise(pl.col("message")),
    )
    out = _run(history, days[:3], bad).filter((pl.col("agent") == "garch") & (pl.col("symbol") == "AAA"))
    assert (out["confidence"] == 0).all()
    assert out["explanation"].str.contains("fallback sigma = trailing EWMA \\(not converged after 100 iterations\\)").all()
    assert out["sigma"].to_list() == pytest.approx([NEUTRAL["ewma_vol_20"] / np.sqrt(252)] * 3)
    # and a session before any fit: the HMM is silent (the heuristic regime then speaks for the session)
    early = DAYS[30:32]
    e = _run(history, early, _fits(history, early))
    assert e.filter(pl.col("agent") == "hmm_regime")["state"].is_null().all()
    assert e.filter(pl.col("agent") == "hmm_regime")["explanation"].str.contains("too few complete sessions").all()


def test_garch_sigma_is_the_filtered_forecast(world):
    """sigma_t = sqrt(omega + alpha e_t^2 + beta s_t) / 100 by the recursion from the window start."""
    import json

    from trading_assets.domain import garch

    history, days, fits, out = world
    t = days[5]
    r = calendar.cadence_session(t, 10, hist.phase("CCC", 10))  # CCC's own phase of the grid
    row = fits.filter((pl.col("agent") == "garch") & (pl.col("fit_date") == r) & (pl.col("symbol") == "CCC"))
    p = json.loads(row["params"][0])
    path = calendar.sessions(date.fromisoformat(p["window_start"]), t)
    x = history.filter((pl.col("symbol") == "CCC") & pl.col("date").is_in(path)).sort("date")["logret_1"].to_numpy()
    e = 100 * (x - p["mean"])
    s = p["omega"] + (p["alpha"] + p["beta"]) * p["backcast"]
    for v in e:
        s = p["omega"] + p["alpha"] * v * v + p["beta"] * s
    got = out.filter((pl.col("agent") == "garch") & (pl.col("symbol") == "CCC") & (pl.col("date") == t))["sigma"][0]
    assert got == pytest.approx(np.sqrt(s) / 100, rel=1e-12)
    assert p["alpha"] + p["beta"] <= garch.P_MAX + 1e-12  # stationary (P = P_MAX * sigmoid(b); the sum may round up)
