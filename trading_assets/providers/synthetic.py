"""A seeded synthetic market: for demos, tests and offline runs (always labelled synthetic).

Every symbol asked for gets a daily path on the NYSE sessions from EPOCH (2000-01-03). The path of a
symbol depends only on (seed, symbol, its sector, whether it is a benchmark): each random component
has its own numpy stream keyed by SeedSequence([seed, crc32(key), component]), drawn sequentially
from EPOCH, so the bar of (symbol, date) is the same whatever window or other symbols are requested
(a longer draw of a stream starts with the shorter one). Requests are slices of that path.

Model (daily, session t; regime k_t in {calm, turbulent}: a seeded two-state Markov chain shared by
the whole market, P(calm->turbulent) = p_calm_to_turbulent, P(turbulent->calm) = p_turbulent_to_calm,
volatility multiplier m_t = 1 or turbulent_vol_multiplier):
    e_t              ~ Student-t(nu) / sqrt(nu / (nu - 2))          (fat tails, unit variance)
    market       r_M = mu_market + sigma_market * m_t * e_M,t
    sector       r_S = sigma_sector * m_t * e_S,t
    idiosyncratic X_t = (1 - kappa) * X_{t-1} + sigma_i * sqrt(m_t) * e_i,t   (slow mean reversion keeps
                   20-year price dispersion plausible: no names at pennies or in the thousands by chance)
    symbol       r_i = beta_i * r_M + gamma_i * r_S + (X_t - X_{t-1})
    total-return path  A_t = P0_i * exp(sum_{u<=t} r_i,u)
The benchmark (SPY) is the market itself: beta 1, no sector, sigma_i = benchmark_tracking_vol, no
corporate actions.

Corporate actions (raw, unadjusted prices; checkpoints every 63 sessions from a per-symbol phase):
- dividend payers pay d = max(0.01, round(q_i * C_{s-1}, 2)) at each checkpoint s, C = raw close;
  price_factor = 1 - d / C_{s-1};
- splitters split 21 sessions after a checkpoint when the raw close C_{s-1} exceeds their threshold;
  ratio r = 3 if C_{s-1} > 1.6 * threshold else 2; value = r, price_factor = 1 / r.
With F_s = product of price_factor over the symbol's actions with ex-date <= s (from EPOCH):
    close_s     = round(A_s * F_s, 2)                 (raw: drops by r on a split, by ~d on a dividend)
    adj_close_s = close_s / F_s                       (forward-adjusted, total-return consistent, point
                                                       in time: F_s uses only actions up to s)
    open_s      = C_{s-1} * pf_s * exp(g_s),  g ~ N(0, (gap_vol_share * v_s)^2), pf_s = factor on s else 1
    high_s      = max(open_s, close_s) * exp(range_vol_share * v_s * |z1|)
    low_s       = min(open_s, close_s) * exp(-range_vol_share * v_s * |z2|)
                  (v_s = the symbol's total daily vol in the regime; prices rounded to cents, which is
                   monotone, so low <= open, close <= high holds after rounding)
    volume_s    = round(L_i * exp(volume_noise * z3 + volume_move_beta * (|r_s| / v_s - 0.8)) * S_s)
                  (L_i a per-symbol level, some thin names; S_s = product of split ratios up to s, so
                   share volume rises after a split)

Injected defects (`Defect`) reproduce every fault the quality stage catches; see DEFECT_KINDS.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from trading_assets.domain import calendar
from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    FetchResult,
    check_window,
    empty_actions,
    empty_bars,
    validate_symbols,
)
from trading_assets.settings import BENCHMARK_SYMBOL

EPOCH = date(2000, 1, 3)  # first session of every synthetic path
# Bump when the generator's arithmetic changes: part of the stored paths' file names (SyntheticProvider)
GENERATOR_REVISION = 1
_PATH_ARRAYS = ("open", "high", "low", "close", "adj_close", "volume")
_ACTION_KINDS = ("dividend", "split")

GICS_SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)

DEFECT_KINDS = (
    "gap",  # the bar is dropped
    "high_below_low",  # high and low swapped (high < low)
    "open_outside",  # open above the high
    "close_outside",  # close below the low
    "spike",  # one bad bar: OHLC times (1 + magnitude), the next bar is clean (a reversed spike)
    "stale",  # `sessions` bars from the date repeat the previous close (O=H=L=C)
    "unadjusted_split",  # from the date on, prices divided by `ratio` and volume times it, no action recorded
    "null_field",  # `field` is null on the date
    "zero_volume",  # volume 0 on the date
    "duplicate",  # the row is delivered twice
    "late_start",  # no bars (nor actions) before the date
)
_PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Defect:
    """One injected fault of a kind in DEFECT_KINDS on (symbol, date); `date` must be a session.

    sessions: length of a stale run; magnitude: relative size of a spike; ratio: the split ratio of
    an unadjusted split; field: the column nulled by null_field.
    """

    kind: str
    symbol: str
    date: date
    sessions: int = 5
    magnitude: float = 0.5
    ratio: float = 2.0
    field: str = "close"

    def __post_init__(self):
        if self.kind not in DEFECT_KINDS:
            raise ValueError(f"unknown defect kind {self.kind!r}; valid: {', '.join(DEFECT_KINDS)}")
        if not calendar.is_session(self.date):
            raise ValueError(f"defect {self.kind} on {self.symbol}: {self.date} is not an NYSE session")
        if self.date < EPOCH:
            raise ValueError(f"defect {self.kind} on {self.symbol}: {self.date} is before the synthetic epoch {EPOCH}")
        if self.kind == "null_field" and self.field not in ("open", "high", "low", "close", "adj_close", "volume"):
            raise ValueError(f"null_field defect: {self.field!r} is not a bar column")
        if self.sessions < 1 or self.ratio <= 1.0 or self.magnitude <= -1.0:
            raise ValueError(f"defect {self.kind} on {self.symbol}: sessions >= 1, ratio > 1, magnitude > -1 required")


@dataclass(frozen=True)
class MarketParams:
    """Parameters of the synthetic market (daily units). Defaults give a plausible US large-cap market."""

    nu: float = 4.0  # Student-t degrees of freedom of every innovation (fat tails)
    mu_market: float = 0.0003  # market drift per session (~7.5% a year)
    sigma_market: float = 0.009  # market vol per session in the calm regime (~14% a year)
    sigma_sector: float = 0.005  # sector factor vol per session
    p_calm_to_turbulent: float = 0.01  # regime chain transition probabilities per session
    p_turbulent_to_calm: float = 0.05
    turbulent_vol_multiplier: float = 2.2  # vol multiplier in the turbulent regime
    beta_range: tuple[float, float] = (0.6, 1.5)
    gamma_range: tuple[float, float] = (0.5, 1.2)  # sector loading
    idio_vol_range: tuple[float, float] = (0.008, 0.02)
    idio_reversion: float = 0.0005  # kappa: AR(1) pull of the idiosyncratic log price (half-life ~1,400 sessions)
    benchmark_tracking_vol: float = 0.0002  # the benchmark is the market plus this tiny noise
    start_price_range: tuple[float, float] = (15.0, 250.0)  # log-uniform price on EPOCH
    volume_range: tuple[float, float] = (1.0e6, 1.5e7)  # log-uniform mean daily shares
    thin_share: float = 0.12  # share of thin names ...
    thin_volume_range: tuple[float, float] = (3.0e4, 3.0e5)  # ... with these volumes
    benchmark_volume: float = 8.0e7
    volume_noise: float = 0.3
    volume_move_beta: float = 0.4  # volume rises with the size of the move
    gap_vol_share: float = 0.3  # overnight gap vol as a share of the daily vol
    range_vol_share: float = 0.5  # intraday excursion scale as a share of the daily vol
    dividend_payer_share: float = 0.55
    quarterly_yield_range: tuple[float, float] = (0.002, 0.009)
    splitter_share: float = 0.5
    split_threshold_range: tuple[float, float] = (250.0, 600.0)
    action_cadence: int = 63  # sessions between dividend checkpoints (quarterly)


# Random components (third SeedSequence word): one independent stream each, so each is prefix-stable.
_C_STATIC, _C_INNOV, _C_GAP, _C_HIGH, _C_LOW, _C_VOLUME, _C_REGIME = range(7)
_STATIC_DRAWS = 16
_MARKET_KEY = zlib.crc32(b"market")


def _rng(seed: int, key: int, component: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, key, component]))


def _std_t(rng: np.random.Generator, nu: float, n: int) -> np.ndarray:
    return rng.standard_t(nu, n) / np.sqrt(nu / (nu - 2.0))


def ar1_filter(shocks: np.ndarray, c: float) -> np.ndarray:
    """X_t = c X_{t-1} + shock_t, X_0 = shock_0, along the last axis of `shocks` (one row per symbol).

    The same floating-point operations as scipy.signal.lfilter([1.0], [1.0, -c], row) -- round(c X_{t-1})
    then round(+ shock_t) -- so the paths are unchanged bit for bit; it loops over time with every
    symbol of the batch at once, and spares a run the import of scipy.signal (~0.4 s)."""
    x = np.ascontiguousarray(np.atleast_2d(shocks).T)  # (time, symbols): each step reads one contiguous row
    out = np.empty_like(x)
    prev = out[0] = x[0]
    for t in range(1, x.shape[0]):
        prev = out[t] = c * prev + x[t]
    return out.T.reshape(np.shape(shocks))


def _chunk(n: int) -> int:
    """Paths are generated in blocks of 1,024 sessions (values do not depend on the length)."""
    return max(1024, -(-n // 1024) * 1024)


@dataclass
class _Path:
    """The full path of one symbol from EPOCH: arrays over sessions[0:n]."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    adj_close: np.ndarray
    volume: np.ndarray
    actions: list[tuple[int, str, float, float]]  # (session index, action, value, price_factor)


class SyntheticProvider:
    """The synthetic market as a provider (name "synthetic", is_synthetic True).

    Generated paths are cached per instance (the newest length per symbol, about 0.35 MB per symbol
    for 25 years of sessions), so repeated requests only slice. With `cache_dir` they are also kept on
    disk (one .npy per symbol and length, memory-mapped when read), so a new process -- the next
    daily run -- slices the stored path instead of regenerating it from EPOCH: the file name carries
    a hash of everything the path depends on (GENERATOR_REVISION, seed, MarketParams, the symbol's
    sector or benchmark role, the length), so a change of any of them generates a new one.
    """

    name = "synthetic"
    is_synthetic = True

    def __init__(
        self,
        seed: int,
        universe: pl.DataFrame | None = None,
        defects: Sequence[Defect] = (),
        params: MarketParams | None = None,
        benchmarks: Sequence[str] = (BENCHMARK_SYMBOL,),
        cache_dir: Path | str | None = None,
    ):
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.params = params or MarketParams()
        self.defects = tuple(defects)
        for d in self.defects:
            if not isinstance(d, Defect):
                raise TypeError(f"defects must be Defect instances, got {type(d).__name__}")
        self._sectors: dict[str, str] = {}
        self._benchmarks = set(benchmarks)
        if universe is not None:
            if "symbol" not in universe.columns:
                raise ValueError("universe frame needs a 'symbol' column (and 'sector')")
            sectors = universe["sector"] if "sector" in universe.columns else [None] * universe.height
            flags = universe["is_benchmark"] if "is_benchmark" in universe.columns else [False] * universe.height
            for sym, sec, flag in zip(universe["symbol"], sectors, flags):
                if flag or sec == "Benchmark":
                    self._benchmarks.add(sym)
                elif sec:
                    self._sectors[sym] = sec
        self._lock = threading.Lock()
        self._market_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sector_cache: dict[tuple[str, int], np.ndarray] = {}
        self._path_cache: dict[tuple[str, int], _Path] = {}
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    # --- public ---------------------------------------------------------------------------------
    def sector_of(self, symbol: str) -> str:
        """The universe's sector, else a stable hash of the symbol onto the 11 GICS sectors."""
        if symbol in self._benchmarks:
            return "Benchmark"
        return self._sectors.get(symbol) or GICS_SECTORS[zlib.crc32(symbol.encode()) % len(GICS_SECTORS)]

    def fetch(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        syms = validate_symbols(symbols)
        check_window(start, end)
        days = calendar.sessions(max(start, EPOCH), end)
        if not syms or not days:
            return FetchResult(self.name, empty_bars(), empty_actions(), missing=tuple(syms))
        all_days = self._session_index(days[-1])
        i0 = all_days.index(days[0])
        i1 = i0 + len(days)
        n = _chunk(i1)
        day_arr = np.array(all_days[i0:i1], dtype="datetime64[D]")

        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("date", "open", "high", "low", "close", "adj_close", "volume")}
        sym_col: list[str] = []
        act_rows: list[tuple] = []
        self._generate_missing(syms, n)
        for sym in syms:
            path = self._path(sym, n)
            cols["date"].append(day_arr)
            for k in ("open", "high", "low", "close", "adj_close", "volume"):
                cols[k].append(getattr(path, k)[i0:i1])
            sym_col.extend([sym] * len(days))
            for idx, action, value, pf in path.actions:
                if i0 <= idx < i1:
                    act_rows.append((all_days[idx], sym, action, value, pf))
        bars = pl.DataFrame(
            {
                "date": np.concatenate(cols["date"]),
                "symbol": sym_col,
                **{k: np.concatenate(cols[k]) for k in ("open", "high", "low", "close", "adj_close", "volume")},
            }
        ).cast(BAR_SCHEMA)
        actions = pl.DataFrame(act_rows, schema=ACTION_SCHEMA, orient="row") if act_rows else empty_actions()
        bars, actions = self._apply_defects(bars, actions, syms, all_days, i0, i1, n)
        bars = bars.sort(["date", "symbol"], maintain_order=True).select(list(BAR_SCHEMA))
        actions = actions.sort(["date", "symbol", "action"]).select(list(ACTION_SCHEMA))
        served = set(bars["symbol"].unique().to_list())
        return FetchResult(self.name, bars, actions, missing=tuple(s for s in syms if s not in served))

    # --- generation -----------------------------------------------------------------------------
    def _session_index(self, last: date) -> list[date]:
        return calendar.sessions(EPOCH, last)

    def _market(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(r_M, m_t) for n sessions from EPOCH; cached by length."""
        with self._lock:
            hit = self._market_cache.get(n)
        if hit is not None:
            return hit
        p = self.params
        u = _rng(self.seed, _MARKET_KEY, _C_REGIME).random(n)
        turbulent = np.zeros(n, dtype=bool)
        state = False
        for t in range(n):  # sequential chain; 1 pass per process and length (cached)
            state = (u[t] >= p.p_turbulent_to_calm) if state else (u[t] < p.p_calm_to_turbulent)
            turbulent[t] = state
        mult = np.where(turbulent, p.turbulent_vol_multiplier, 1.0)
        r_m = p.mu_market + p.sigma_market * mult * _std_t(_rng(self.seed, _MARKET_KEY, _C_INNOV), p.nu, n)
        with self._lock:
            self._market_cache[n] = (r_m, mult)
        return r_m, mult

    def _sector(self, sector: str, n: int) -> np.ndarray:
        key = (sector, n)
        with self._lock:
            hit = self._sector_cache.get(key)
        if hit is not None:
            return hit
        _, mult = self._market(n)
        e = _std_t(_rng(self.seed, zlib.crc32(f"sector:{sector}".encode()), _C_INNOV), self.params.nu, n)
        r_s = self.params.sigma_sector * mult * e
        with self._lock:
            self._sector_cache[key] = r_s
        return r_s

    def _remember(self, symbol: str, n: int, path: _Path) -> None:
        with self._lock:
            # keep only the newest length per symbol: memory stays ~ symbols x sessions
            for k in [k for k in self._path_cache if k[0] == symbol]:
                del self._path_cache[k]
            self._path_cache[(symbol, n)] = path

    def _path(self, symbol: str, n: int) -> _Path:
        key = (symbol, n)
        with self._lock:
            hit = self._path_cache.get(key)
        if hit is not None:
            return hit
        path = self._load(symbol, n)
        if path is None:
            path = self._generate(symbol, n)
            self._store(symbol, n, path)
        self._remember(symbol, n, path)
        return path

    def _generate_missing(self, symbols: Sequence[str], n: int) -> None:
        """Load the stored paths of length n not in memory yet, and generate the others, their AR(1)
        filters as one batch."""
        with self._lock:
            missing = [s for s in dict.fromkeys(symbols) if (s, n) not in self._path_cache]
        todo = []
        for sym in missing:
            path = self._load(sym, n)
            if path is None:
                todo.append(sym)
            else:
                self._remember(sym, n, path)
        if len(todo) < 2:
            return
        filtered = ar1_filter(np.stack([self._idio_shocks(s, n) for s in todo]), 1.0 - self.params.idio_reversion)
        for sym, x in zip(todo, filtered):
            path = self._generate(sym, n, x)
            self._store(sym, n, path)
            self._remember(sym, n, path)

    # --- the on-disk store of generated paths ---------------------------------------------------
    def _file(self, symbol: str, n: int) -> Path:
        role = "benchmark" if symbol in self._benchmarks else self.sector_of(symbol)
        # numpy's version is in the key: Generator streams (standard_t, ...) may change between numpy releases
        key = json.dumps([GENERATOR_REVISION, np.__version__, self.seed, dataclasses.asdict(self.params), symbol, role, n],
                         sort_keys=True)
        return self.cache_dir / f"{symbol}-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npy"

    def _load(self, symbol: str, n: int) -> _Path | None:
        """The stored path, memory-mapped (a request reads only the pages of its window), or None."""
        if self.cache_dir is None:
            return None
        f = self._file(symbol, n)
        try:
            arr = np.load(f, mmap_mode="r")
            acts = np.load(f.with_suffix(".actions.npy"))  # (4, k): index, kind, value, price_factor
            if arr.shape != (len(_PATH_ARRAYS), n) or acts.ndim != 2 or acts.shape[0] != 4:
                return None
            actions = [(int(i), _ACTION_KINDS[int(c)], float(v), float(pf)) for i, c, v, pf in acts.T]
        except (OSError, ValueError, EOFError, IndexError, TypeError):
            # absent, or a torn/foreign file (a zero-length .npy raises EOFError, a bad action code
            # IndexError): generate it again
            return None
        return _Path(*(arr[j] for j in range(len(_PATH_ARRAYS))), actions)

    def _store(self, symbol: str, n: int, path: _Path) -> None:
        """Write the path and its actions (each to a temporary name, then renamed, the actions first:
        a reader never sees half a file, nor a path without its actions)."""
        if self.cache_dir is None:
            return
        acts = np.array([(i, _ACTION_KINDS.index(a), v, pf) for i, a, v, pf in path.actions], dtype=float).reshape(-1, 4).T
        f = self._file(symbol, n)
        for target, arr in ((f.with_suffix(".actions.npy"), acts), (f, np.stack([getattr(path, k) for k in _PATH_ARRAYS]))):
            tmp = None
            try:
                f.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=f.parent, prefix=f".{f.stem}-", suffix=".npy", delete=False) as tmp:
                    np.save(tmp, arr)
                os.replace(tmp.name, target)
            except OSError:  # a read-only or full disk: the path stays in memory only
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp.name)
                return

    def _idio_shocks(self, symbol: str, n: int) -> np.ndarray:
        """sigma_i * sqrt(m_t) * e_i,t: the idiosyncratic shocks the AR(1) filter integrates."""
        p = self.params
        key = zlib.crc32(symbol.encode())
        _, mult = self._market(n)
        u = _rng(self.seed, key, _C_STATIC).random(_STATIC_DRAWS)
        sigma_i = p.benchmark_tracking_vol if symbol in self._benchmarks else p.idio_vol_range[0] + u[2] * (p.idio_vol_range[1] - p.idio_vol_range[0])
        return sigma_i * np.sqrt(mult) * _std_t(_rng(self.seed, key, _C_INNOV), p.nu, n)

    def _generate(self, symbol: str, n: int, x: np.ndarray | None = None) -> _Path:
        """The path of `symbol` over n sessions; x: its filtered idiosyncratic component if already computed."""
        p = self.params
        key = zlib.crc32(symbol.encode())
        bench = symbol in self._benchmarks
        r_m, mult = self._market(n)
        u = _rng(self.seed, key, _C_STATIC).random(_STATIC_DRAWS)

        def between(x: float, lo_hi: tuple[float, float], log: bool = False) -> float:
            lo, hi = lo_hi
            return float(np.exp(np.log(lo) + x * (np.log(hi) - np.log(lo)))) if log else lo + x * (hi - lo)

        if bench:
            beta, gamma, sigma_i = 1.0, 0.0, p.benchmark_tracking_vol
            p0, level = 100.0, p.benchmark_volume
            payer = splitter = False
            r_s = np.zeros(n)
        else:
            beta = between(u[0], p.beta_range)
            gamma = between(u[1], p.gamma_range)
            sigma_i = between(u[2], p.idio_vol_range)
            p0 = between(u[3], p.start_price_range, log=True)
            thin = u[4] < p.thin_share
            level = between(u[5], p.thin_volume_range if thin else p.volume_range, log=True)
            payer = u[6] < p.dividend_payer_share
            splitter = u[8] < p.splitter_share
            r_s = self._sector(self.sector_of(symbol), n)
        q = between(u[7], p.quarterly_yield_range)
        threshold = between(u[9], p.split_threshold_range)
        phase = 1 + int(u[10] * p.action_cadence)

        # causal AR(1) filter: X_t = (1 - kappa) X_{t-1} + shock_t, so the path stays prefix-stable
        if x is None:
            x = ar1_filter(self._idio_shocks(symbol, n), 1.0 - p.idio_reversion)
        r = beta * r_m + gamma * r_s + np.diff(x, prepend=0.0)
        a = p0 * np.exp(np.cumsum(r))  # total-return path A_t
        # daily vol of the symbol in the current regime (scale of gaps, ranges and volume moves)
        v = np.sqrt((beta * p.sigma_market * mult) ** 2 + (gamma * p.sigma_sector * mult) ** 2 + sigma_i**2 * mult)

        # corporate actions: sequential over checkpoints (each depends on the raw close before it)
        actions: list[tuple[int, str, float, float]] = []
        factor_at = np.ones(n)  # price_factor on its ex-date index
        split_at = np.ones(n)
        f = 1.0
        if payer or splitter:
            a_list = a.tolist()  # python floats: the loop below is scalar arithmetic
            for c in range(phase, n, p.action_cadence):
                if payer:
                    # = the delivered close: np.round(x, 2) is rint(x * 100) / 100, and Python's
                    # round() to an int is the same half-to-even rule (and fast on floats)
                    prev = max(0.01, round(a_list[c - 1] * f * 100.0) / 100.0)
                    d = max(0.01, round(q * prev * 100.0) / 100.0)
                    pf = 1.0 - d / prev
                    actions.append((c, "dividend", d, pf))
                    factor_at[c] = pf
                    f *= pf
                s = c + 21
                if splitter and s < n:
                    prev = a_list[s - 1] * f
                    if prev > threshold:
                        ratio = 3.0 if prev > 1.6 * threshold else 2.0
                        actions.append((s, "split", ratio, 1.0 / ratio))
                        factor_at[s] = 1.0 / ratio
                        split_at[s] = ratio
                        f *= 1.0 / ratio  # the same product cumprod(factor_at) forms below
        big_f = np.cumprod(factor_at)
        close = np.maximum(np.round(a * big_f, 2), 0.01)
        adj_close = close / big_f

        g_rng, h_rng, l_rng, v_rng = (_rng(self.seed, key, c) for c in (_C_GAP, _C_HIGH, _C_LOW, _C_VOLUME))
        prev_close = np.empty(n)
        prev_close[0] = close[0] / np.exp(r[0])
        prev_close[1:] = close[:-1]
        open_ = prev_close * factor_at * np.exp(p.gap_vol_share * v * g_rng.standard_normal(n))
        top = np.maximum(open_, close) * np.exp(p.range_vol_share * v * np.abs(h_rng.standard_normal(n)))
        bottom = np.minimum(open_, close) * np.exp(-p.range_vol_share * v * np.abs(l_rng.standard_normal(n)))
        open_ = np.maximum(np.round(open_, 2), 0.01)
        high = np.maximum(np.round(top, 2), 0.01)
        low = np.maximum(np.round(bottom, 2), 0.01)
        shares = np.cumprod(split_at)
        volume = np.round(
            level * np.exp(p.volume_noise * v_rng.standard_normal(n) + p.volume_move_beta * (np.abs(r) / v - 0.8)) * shares
        )
        return _Path(open_, high, low, close, adj_close, volume, actions)

    # --- defects --------------------------------------------------------------------------------
    def _apply_defects(
        self, bars: pl.DataFrame, actions: pl.DataFrame, syms: list[str], all_days: list[date], i0: int, i1: int, n: int
    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        wanted = set(syms)
        defects = [d for d in self.defects if d.symbol in wanted]
        if not defects:
            return bars, actions
        last = all_days[i1 - 1]
        sym, dt = pl.col("symbol"), pl.col("date")
        for d in defects:
            on = (sym == d.symbol) & (dt == d.date)
            if d.kind == "gap":
                bars = bars.filter(~on)
            elif d.kind == "high_below_low":
                bars = bars.with_columns(
                    pl.when(on).then(pl.col("low") * 0.99).otherwise(pl.col("high")).alias("high"),
                    pl.when(on).then(pl.col("high") * 1.01).otherwise(pl.col("low")).alias("low"),
                )
            elif d.kind == "open_outside":
                bars = bars.with_columns(pl.when(on).then(pl.col("high") * 1.05).otherwise(pl.col("open")).alias("open"))
            elif d.kind == "close_outside":
                bad = pl.col("low") * 0.95
                bars = bars.with_columns(
                    pl.when(on).then(bad * pl.col("adj_close") / pl.col("close")).otherwise(pl.col("adj_close")).alias("adj_close")
                ).with_columns(pl.when(on).then(bad).otherwise(pl.col("close")).alias("close"))
            elif d.kind == "spike":
                k = 1.0 + d.magnitude
                bars = bars.with_columns(
                    [pl.when(on).then(pl.col(c) * k).otherwise(pl.col(c)).alias(c) for c in (*_PRICE_FIELDS, "adj_close")]
                )
            elif d.kind == "stale":
                if d.date > last:
                    continue
                j = all_days.index(d.date)
                c0 = float(self._path(d.symbol, n).close[max(j - 1, 0)])
                run = (sym == d.symbol) & dt.is_in(all_days[j : j + d.sessions])
                # adj_close keeps its meaning close / F_s (F_s = close / adj_close of the clean row)
                bars = bars.with_columns(
                    pl.when(run).then(c0 * pl.col("adj_close") / pl.col("close")).otherwise(pl.col("adj_close")).alias("adj_close")
                ).with_columns([pl.when(run).then(pl.lit(c0)).otherwise(pl.col(c)).alias(c) for c in _PRICE_FIELDS])
            elif d.kind == "unadjusted_split":
                after = (sym == d.symbol) & (dt >= d.date)
                bars = bars.with_columns(
                    [pl.when(after).then(pl.col(c) / d.ratio).otherwise(pl.col(c)).alias(c) for c in (*_PRICE_FIELDS, "adj_close")]
                    + [pl.when(after).then((pl.col("volume") * d.ratio).round(0)).otherwise(pl.col("volume")).alias("volume")]
                )
            elif d.kind == "null_field":
                bars = bars.with_columns(pl.when(on).then(None).otherwise(pl.col(d.field)).alias(d.field))
            elif d.kind == "zero_volume":
                bars = bars.with_columns(pl.when(on).then(0.0).otherwise(pl.col("volume")).alias("volume"))
            elif d.kind == "duplicate":
                bars = pl.concat([bars, bars.filter(on)])
            elif d.kind == "late_start":
                bars = bars.filter(~((sym == d.symbol) & (dt < d.date)))
                actions = actions.filter(~((sym == d.symbol) & (dt < d.date)))
        return bars, actions
