"""A Gaussian hidden Markov model of the market: fit (numpy Baum-Welch) and the forward filter (pure numpy).

Observations x_t (one row per session, 3 columns): the market's daily log return, its realized
volatility and its breadth (`market_observations`). Model with K states (2 or 3):
    P(state_0 = k) = pi_k,  P(state_t = j | state_{t-1} = i) = A_ij,
    x_t | state_t = k  ~  N(mu_k, diag(var_k))        on the columns standardized by the fit window's
                                                       mean and standard deviation.
Fit: Baum-Welch EM with diagonal covariances (domain/gaussian_hmm.py: numpy, hmmlearn's GaussianHMM updates,
hmmlearn only the tests' reference) from `n_seeds` initializations 0..n_seeds-1 (gaussian_hmm.init_params);
the fit with the highest log-likelihood is kept (ties: the lowest seed). States are then ordered by
the variance of the return column (ascending), so label 0 is the calmest state whatever order EM
found them in: K = 3 -> (risk_on, neutral, risk_off), K = 2 -> (risk_on, risk_off). The labels are
stable across refits because they come from the order, not from EM's arbitrary numbering.

Filtered probabilities (the forward algorithm, normalized each step; what is known at t):
    a_0 = pi * b_0 / sum(pi * b_0),      a_t = (a_{t-1} A) * b_t / sum((a_{t-1} A) * b_t)
with b_t[k] = N(x_t; mu_k, diag var_k). A session with a missing observation takes the prediction
step only: a_t = a_{t-1} A. a_t uses x_0..x_t only. The forward-backward SMOOTHER (P(state_t | x_0..x_T),
which reads sessions after t: EM's gamma in gaussian_hmm.forward_backward, hmmlearn's predict / predict_proba)
serves the fit's E-step inside its window only, never a session's state.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from trading_assets.domain import gaussian_hmm

LABELS = {2: ("risk_on", "risk_off"), 3: ("risk_on", "neutral", "risk_off")}
OBS_COLUMNS = ("mkt_ret", "mkt_vol", "mkt_breadth")


BREADTH = "px_sma_50"  # breadth: above the 50-session line (a 200-session line would need 200 sessions of warm-up)


def market_observations(history: pl.DataFrame, benchmark: str | None) -> pl.DataFrame:
    """date, mkt_ret, mkt_vol, mkt_breadth from per-symbol rows (date, symbol, logret_1, vol_20, px_sma_50):
    mkt_ret = the benchmark's logret_1 (the equal-weight mean of the other symbols' when the benchmark
    has no row), mkt_vol = the benchmark's vol_20 (else the cross-sectional median), mkt_breadth =
    the share of non-benchmark symbols with px_sma_50 > 0 among those with a value."""
    def fin(c: str) -> pl.Expr:
        x = pl.col(c).cast(pl.Float64)
        return pl.when(x.is_finite()).then(x)

    is_b = pl.col("symbol") == pl.lit(benchmark) if benchmark else pl.lit(False)
    h = history.with_columns(_b=is_b)
    bench = h.filter(pl.col("_b")).select("date", _br=fin("logret_1"), _bv=fin("vol_20"))
    px = fin(BREADTH)
    cross = h.filter(~pl.col("_b")).group_by("date").agg(
        _mr=fin("logret_1").mean(), _mv=fin("vol_20").median(),
        _above=(px > 0).sum(), _known=px.is_not_null().sum(),
    )
    m = cross.join(bench, on="date", how="full", coalesce=True)
    return m.select(
        "date",
        mkt_ret=pl.coalesce("_br", "_mr"),
        mkt_vol=pl.coalesce("_bv", "_mv"),
        mkt_breadth=pl.when(pl.col("_known") > 0).then(pl.col("_above") / pl.col("_known")),
    ).sort("date")


def fit(x: np.ndarray, n_states: int = 3, n_seeds: int = 4, n_iter: int = 100, tol: float = 1e-4, min_rows: int = 50) -> dict:
    """Fit on the rows of x (T x 3) without a missing value; returns the params dict (JSON-able):
    n_states, center, scale, startprob, transmat, means, vars (standardized, states ordered), loglik,
    seed, converged, n_obs. Raises ValueError when fewer than `min_rows` complete rows.
    EM (gaussian_hmm.baum_welch) from gaussian_hmm.init_params(z, K, seed) for seed = 0..n_seeds-1 (seed 0:
    the sessions grouped by volatility, column 1); the highest log-likelihood wins (ties: the lowest seed)."""
    x = np.asarray(x, dtype=float)
    rows = x[np.isfinite(x).all(axis=1)]
    if rows.shape[0] < max(min_rows, 2 * n_states):
        raise ValueError(f"HMM fit needs >= {max(min_rows, 2 * n_states)} complete sessions, got {rows.shape[0]}")
    center = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (rows - center) / scale
    best = None
    for seed in range(n_seeds):
        with np.errstate(divide="ignore", over="ignore", under="ignore"):
            res = gaussian_hmm.baum_welch(z, gaussian_hmm.init_params(z, n_states, seed, order_column=1), n_iter, tol)
        if not np.isfinite(res["loglik"]):
            continue
        if best is None or res["loglik"] > best[0]["loglik"] + 1e-9:
            best = (res, seed)
    if best is None:
        raise ValueError("HMM fit: no seed reached a finite log-likelihood")
    res, seed = best
    order = np.argsort(res["vars"][:, 0], kind="stable")
    return {
        "n_states": n_states,
        "center": center.tolist(),
        "scale": scale.tolist(),
        "startprob": res["startprob"][order].tolist(),
        "transmat": res["transmat"][np.ix_(order, order)].tolist(),
        "means": res["means"][order].tolist(),
        "vars": res["vars"][order].tolist(),
        "loglik": float(res["loglik"]),
        "seed": seed,
        "converged": bool(res["converged"]),
        "n_obs": int(rows.shape[0]),
    }


def log_emissions(x: np.ndarray, params: dict) -> np.ndarray:
    """log N(z_t; mu_k, diag var_k) for every row t and state k (T x K); NaN where x_t is incomplete."""
    z = (np.asarray(x, dtype=float) - np.asarray(params["center"])) / np.asarray(params["scale"])
    mu, var = np.asarray(params["means"]), np.asarray(params["vars"])
    d = z[:, None, :] - mu[None, :, :]
    out = -0.5 * (np.log(2 * math.pi * var)[None] + d * d / var[None]).sum(axis=2)
    return out


def forward_filter(x: np.ndarray, params: dict) -> np.ndarray:
    """Filtered state probabilities P(state_t | x_0..x_t), T x K (the module docstring's recursion)."""
    logb = log_emissions(x, params)
    pi = np.asarray(params["startprob"])
    a_mat = np.asarray(params["transmat"])
    t_len, k = logb.shape
    out = np.empty((t_len, k))
    prev = None
    for t in range(t_len):
        pred = pi if prev is None else prev @ a_mat
        lb = logb[t]
        if np.isfinite(lb).all():
            w = pred * np.exp(lb - lb.max())
            total = w.sum()
            a = w / total if total > 0 else pred
        else:
            a = pred
        out[t] = a
        prev = a
    return out
