"""Execution schedules (market-on-open, TWAP, VWAP), the paper day path and implementation shortfall.

Pure (numpy, polars). An order decided at session t executes during session t+1 ("the fill session")
as child orders in `slices` equal time slots of the 390-minute regular session (default 13 x 30 min).

Schedules (whole shares; the children always sum to the parent before the cap):
- market_on_open: one child in the opening slot at the open O (today's behaviour, bit for bit: the
  risk gate's ADV limit, max_adv_fraction of ADV per order, is its only size bound; no participation
  cap, the opening auction is not sliced).
- twap: N equal children, q_k = floor(Q / N) + (1 if k < Q mod N), k = 0..N-1 (the remainder goes to
  the earliest slots; nautilus_trader's TWAP algorithm appends it as one extra child instead).
- vwap: children in proportion to the intraday volume profile p_k (below), rounded by largest
  remainder: q_k = floor(Q p_k) plus one share to the slots with the largest fractional parts until
  sum q_k = Q (Hamilton's method; ties to the earlier slot).

Participation cap (twap, vwap): the expected market volume of slot k is V_k = ADV_t * p_k (ADV_t = the
21-session average daily share volume known at the close of t, the scheduler's point-in-time input;
times the split ratio when a split is effective at the fill open). Each child is bounded by
c_k = floor(cap * V_k) (cap = participation_cap, default 10%). A child that cannot be done within its
slot's cap rolls into the next slot ("catch-up"): executed_k = min(q_k + deficit_{k-1}, c_k),
deficit_k = q_k + deficit_{k-1} - executed_k. What is left after the last slot, deficit_{N-1}, is the
leftover: carried to the next session or cancelled (ExecutionSettings.leftover), recorded either way.
Unknown ADV (null, non-finite or <= 0): the cap cannot be computed; the children run uncapped and the
parent's reason says NO_VOLUME_ESTIMATE (the risk gate sends no order without ADV, so this is rare).
Lean's VolumeWeightedAveragePriceExecutionModel caps each slice the same way (a share of the bar's
volume, 1% there), and values a bar at its typical price (H + L + C) / 3, the VWAP proxy used below.

Intraday volume profile (U shape). No intraday data exists in this project, so the profile is a
quadratic fitted by least squares to published half-hour volumes of the US regular session: the 2009
median half-hour volumes of S&P 500 E-mini futures (regular hours 8:30-15:00 CT = the NYSE session
9:30-16:00 ET, 13 half hours) published by B. Steenbarger, "Relative Volume for ES Futures",
TraderFeed, April 2009 (traderfeed.blogspot.com/2009/04/relative-volume-for-es-futures.html), the
U shape being the classic finding for NYSE stocks of Jain & Joh (1988, "The dependence between hourly
prices and trading volume", JFQA 23(3)) and Admati & Pfleiderer (1988, RFS 1(1)). With x in [0, 1]
the time of day, the share density is f(x) = a x^2 + b x + c (fitted to the 13 half-hour shares at
their midpoints, times 13); the profile of N equal slots is p_k = F((k+1)/N) - F(k/N) over
F(1) - F(0), F the antiderivative. Fitted: a = 4.45, b = -4.52, c = 1.78 (x 1/13: the table's
first half hour 12.0% of the day, the trough 4.8%, the last 13.0%; the fit is within 10% of each).

Paper day path (`day_path`): a seeded path of `steps` + 1 prices (one a minute) that passes through
the session's open, high, low and close by construction. The times of the high and the low are drawn
uniformly among the interior minutes (minute 0 when the open is the high or the low, the last minute
when the close is), then consecutive anchors (0, O), (t_1, P_1), (t_2, P_2), (steps, C) are joined by
Brownian bridges B_j = P_a + (P_b - P_a) j / m + sigma (W_j - (j / m) W_m), W a standard random walk,
sigma = (H - L) / (2 sqrt(steps)) a step's volatility; the path is then clipped to [L, H] (the anchors
already lie in it), so max = H and min = L exactly. The generator is seeded by (seed, the fill date,
crc32 of the symbol): a session's path does not depend on what else trades that day.
The price of slot k is the mean of the path over the slot's minutes j = k*steps/N .. (k+1)*steps/N
(inclusive ends): a child worked evenly through its slot; market_on_open fills at the open O.

Child fill (`child_cost`): the cost model of domain/costs.py at the child's slot price P_k,
    price_k = P_k * (1 + e (h + impact)),  h = slippage_bps / 1e4,  e = +1 BUY / -1 SELL
    impact  = costs.impact_fraction(filled, ADV_t, sigma_daily_t): Almgren et al. (2005) for the parent's
              executed shares worked over the session (T = 1), the same fraction for every child (0
              without the inputs); market_on_open gets exactly costs.fill_price at the open
    cost_k  = |price_k - P_k| * q_k
Commission is charged per PARENT (one broker order, however the broker works it):
    commission = max(min_commission, commission_per_share * filled) when filled > 0, else 0,
and allocated to the children pro rata to their quantity (the last child takes the rounding rest).

Per parent (one `fills` row): filled = sum executed_k, avg_price = sum q_k price_k / filled,
fill_ratio = filled / ordered, and with side sign e = +1 (BUY) / -1 (SELL), arrival price O, the day's
VWAP proxy TP = (H + L + C) / 3:
    shortfall_arrival_bps = e (avg_price - O) / O * 1e4   (Perold's execution cost vs the decision's
                                                           arrival price, the next open; costs in price)
    shortfall_vwap_bps    = e (avg_price - TP) / TP * 1e4
Both are NaN when nothing filled. The unfilled part's opportunity cost e (C - O) * leftover is
reported with the leftover in the reason text (the book carries or cancels the leftover).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np

from trading_assets.domain import costs as cost_model
from trading_assets.settings import CostSettings, ExecutionSettings

MARKET_ON_OPEN = "market_on_open"
TWAP = "twap"
VWAP = "vwap"
ALGOS = (MARKET_ON_OPEN, TWAP, VWAP)
CANCEL = "cancel"
CARRY = "carry"
LEFTOVER_POLICIES = (CANCEL, CARRY)
SESSION_MINUTES = 390

# Published half-hour volumes of the US regular session (see the module docstring for the source):
# median contracts per half hour, S&P 500 E-mini futures, 2009, 8:30 .. 14:30 CT slot starts.
VOLUME_STUDY_HALF_HOURS = (242_978, 208_202, 173_246, 142_250, 117_904, 104_093, 97_808, 108_429, 113_074,
                           133_750, 147_448, 180_139, 264_140)


def _fit_profile() -> tuple[float, float, float]:
    """(a, b, c) of the share density f(x) = a x^2 + b x + c, least squares on the study's 13 half hours."""
    v = np.asarray(VOLUME_STUDY_HALF_HOURS, dtype=float)
    n = v.size
    x = (np.arange(n) + 0.5) / n
    a, b, c = np.polyfit(x, v / v.sum() * n, 2)
    return float(a), float(b), float(c)


PROFILE_COEFFICIENTS = _fit_profile()


def volume_profile(n_slots: int) -> np.ndarray:
    """p_k = (F((k+1)/N) - F(k/N)) / (F(1) - F(0)), F(x) = a x^3 / 3 + b x^2 / 2 + c x: sums to 1."""
    if n_slots < 1:
        raise ValueError(f"slices must be >= 1, got {n_slots}")
    a, b, c = PROFILE_COEFFICIENTS
    edges = np.linspace(0.0, 1.0, n_slots + 1)
    big_f = a * edges**3 / 3 + b * edges**2 / 2 + c * edges
    p = np.diff(big_f) / (big_f[-1] - big_f[0])
    if (p <= 0).any():  # cannot happen for the fitted (convex, positive) curve; a refit must keep it so
        raise ValueError("the fitted volume profile is not positive on every slot")
    return p


def split_evenly(quantity: int, n: int) -> np.ndarray:
    """TWAP: floor(Q / N) each, the remainder Q mod N one share each to the earliest slots."""
    q, r = divmod(int(quantity), n)
    out = np.full(n, q, dtype=np.int64)
    out[:r] += 1
    return out


def split_by_weights(quantity: int, weights: np.ndarray) -> np.ndarray:
    """Largest remainder: floor(Q w_k), then +1 to the largest fractional parts (ties: earlier slot)."""
    w = np.asarray(weights, dtype=float) / float(np.sum(weights))
    raw = int(quantity) * w
    base = np.floor(raw).astype(np.int64)
    rest = int(quantity) - int(base.sum())
    if rest:
        order = np.lexsort((np.arange(w.size), -(raw - base)))  # largest fraction first, then slot
        base[order[:rest]] += 1
    return base


@dataclass(frozen=True)
class Schedule:
    """planned: the children before the cap (sum = parent); cap: per-slot bound (inf: none);
    executed: after the cap with catch-up; leftover: parent - sum(executed)."""

    algo: str
    planned: np.ndarray
    cap: np.ndarray
    executed: np.ndarray
    leftover: int
    cap_known: bool


def schedule(quantity: int, algo: str, slices: int, expected_volume: float | None,
             participation_cap: float) -> Schedule:
    """The children of one parent of `quantity` shares (see the module docstring)."""
    q = int(quantity)
    if q < 0 or q != quantity:
        raise ValueError(f"quantity must be a non-negative whole number of shares, got {quantity!r}")
    if algo == MARKET_ON_OPEN:
        one = np.array([q], dtype=np.int64)
        return Schedule(algo, one, np.array([np.inf]), one.copy(), 0, True)
    if algo not in (TWAP, VWAP):
        raise ValueError(f"execution algo must be one of {ALGOS}, not {algo!r}")
    profile = volume_profile(slices)
    planned = split_evenly(q, slices) if algo == TWAP else split_by_weights(q, profile)
    known = expected_volume is not None and math.isfinite(expected_volume) and expected_volume > 0
    if not known:
        cap = np.full(slices, np.inf)
    else:
        cap = np.floor(participation_cap * float(expected_volume) * profile + 1e-9)
    executed = np.zeros(slices, dtype=np.int64)
    deficit = 0
    for k in range(slices):
        want = int(planned[k]) + deficit
        done = want if not np.isfinite(cap[k]) else min(want, int(cap[k]))
        executed[k] = done
        deficit = want - done
    return Schedule(algo, planned, cap, executed, deficit, known)


# --- the day path -----------------------------------------------------------------------------------
def path_rng(seed: int, day: date, symbol: str) -> np.random.Generator:
    """The generator of one (fill session, symbol): seeded by (seed, date ordinal, crc32(symbol))."""
    return np.random.default_rng([int(seed), day.toordinal(), zlib.crc32(symbol.encode())])


def day_path(o: float, h: float, low: float, c: float, rng: np.random.Generator,
             steps: int = SESSION_MINUTES) -> np.ndarray:
    """steps + 1 prices through O (first), H, L and C (last), within [L, H] (see the module docstring)."""
    vals = (o, h, low, c)
    if not all(v is not None and math.isfinite(v) and v > 0 for v in vals):
        raise ValueError(f"day path needs positive finite O/H/L/C, got {vals}")
    tol = 1e-9 * max(vals)
    if h + tol < max(o, c) or low - tol > min(o, c) or h < low:
        raise ValueError(f"inconsistent bar: O={o} H={h} L={low} C={c} (need L <= O, C <= H)")
    if steps < 3:
        raise ValueError("the path needs at least 3 steps")
    if h - low <= tol:
        return np.full(steps + 1, o, dtype=float)

    interior = rng.choice(np.arange(1, steps), size=2, replace=False)  # drawn always: same stream
    def when(p: float, k: int) -> int:
        if abs(p - o) <= tol:
            return 0
        if abs(p - c) <= tol:
            return steps
        return int(interior[k])

    anchors = {0: o, steps: c}
    for t, p in ((when(h, 0), h), (when(low, 1), low)):
        anchors.setdefault(t, p)  # an anchor at 0 or `steps` is O or C itself, equal to p within tol
    times = sorted(anchors)
    sigma = (h - low) / (2.0 * math.sqrt(steps))
    noise = rng.standard_normal(steps)
    path = np.empty(steps + 1)
    for ta, tb in zip(times[:-1], times[1:]):
        m = tb - ta
        w = np.concatenate([[0.0], np.cumsum(noise[ta:tb])])
        j = np.arange(m + 1)
        pa, pb = anchors[ta], anchors[tb]
        path[ta:tb + 1] = pa + (pb - pa) * j / m + sigma * (w - j / m * w[-1])
    np.clip(path, low, h, out=path)
    for t, p in anchors.items():  # exact, not just within rounding
        path[t] = p
    return path


def slot_prices(path: np.ndarray, slices: int) -> np.ndarray:
    """Mean of the path over each slot's minutes k*S/N .. (k+1)*S/N (inclusive), S = len(path) - 1."""
    steps = path.size - 1
    edges = np.rint(np.linspace(0, steps, slices + 1)).astype(int)
    return np.array([path[a:b + 1].mean() for a, b in zip(edges[:-1], edges[1:])])


# --- child fills and the parent ---------------------------------------------------------------------
def child_cost(slot_price: float, side_sign: int, quantity: float, settings: ExecutionSettings,
               impact: float = 0.0) -> tuple[float, float]:
    """(fill price, cost) of one child at its slot price: half spread + the parent's market impact
    (domain/costs.py, the formula of costs.fill_price) (module docstring)."""
    h = settings.slippage_bps / 1e4
    price = slot_price * (1.0 + side_sign * (h + impact))
    return price, abs(price - slot_price) * quantity


@dataclass(frozen=True)
class ParentExecution:
    """One parent's execution on its fill session: the children and the parent summary."""

    schedule: Schedule
    slot_price: np.ndarray  # path price of each slot
    price: np.ndarray  # child fill prices (NaN where the child is 0 shares)
    cost: np.ndarray  # child slippage / impact cost
    commission: np.ndarray  # child share of the parent's commission
    filled: int
    avg_price: float
    commission_total: float
    cost_total: float
    arrival_price: float
    vwap_proxy: float
    shortfall_arrival_bps: float
    shortfall_vwap_bps: float
    fill_ratio: float
    opportunity_cost: float


def execute_parent(quantity: int, side_sign: int, ohlc: tuple[float, float, float, float],
                   expected_volume: float | None, settings: ExecutionSettings, rng: np.random.Generator,
                   algo: str | None = None, path: np.ndarray | None = None, sigma_daily: float | None = None,
                   costs: CostSettings | None = None) -> ParentExecution:
    """Schedule, fill and summarize one parent (see the module docstring); `path` overrides the seeded
    day path (tests use a hand-made one); `costs` (with sigma_daily) adds the market impact."""
    algo = algo or settings.algo
    o, h, low, c = ohlc
    sch = schedule(quantity, algo, settings.slices, expected_volume, settings.participation_cap)
    if algo == MARKET_ON_OPEN:
        slot_px = np.array([o], dtype=float)
    else:
        if path is None:
            path = day_path(o, h, low, c, rng, settings.path_steps)
        slot_px = slot_prices(path, settings.slices)
    q = sch.executed.astype(float)
    price = np.full(q.size, np.nan)
    cost = np.zeros(q.size)
    filled = int(sch.executed.sum())
    impact = 0.0
    if costs is not None and filled:
        vol = expected_volume if expected_volume is not None else math.nan
        sig = sigma_daily if sigma_daily is not None else math.nan
        impact = float(cost_model.impact_fraction(filled, vol, sig, costs))
    for k in np.flatnonzero(q > 0).tolist():
        price[k], cost[k] = child_cost(float(slot_px[k]), side_sign, float(q[k]), settings, impact)
    comm_total = max(settings.min_commission, settings.commission_per_share * filled) if filled else 0.0
    comm = np.zeros(q.size)
    live = np.flatnonzero(q > 0)
    if live.size:
        comm[live] = comm_total * q[live] / filled
        comm[live[-1]] = comm_total - comm[live[:-1]].sum()
    if live.size == 1:  # one child: its price exactly (q p / q may differ from p in the last bit)
        avg = float(price[live[0]])
    else:
        avg = float(np.sum(q[live] * price[live]) / filled) if filled else math.nan
    tp = (h + low + c) / 3.0
    is_arr = side_sign * (avg - o) / o * 1e4 if filled else math.nan
    is_vwap = side_sign * (avg - tp) / tp * 1e4 if filled else math.nan
    return ParentExecution(sch, slot_px, price, cost, comm, filled, avg, float(comm_total), float(cost.sum()),
                           float(o), float(tp), float(is_arr), float(is_vwap),
                           filled / quantity if quantity else math.nan, side_sign * (c - o) * sch.leftover)


def slot_start_minute(k: int, slices: int, steps: int = SESSION_MINUTES) -> int:
    """Minutes after the open at which slot k starts (0 for market_on_open's one child)."""
    return int(round(k * steps / slices))
