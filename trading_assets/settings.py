"""Typed, frozen settings for the whole pipeline.

Every tunable number lives here (never in the domain code), read once from the environment with
documented defaults. `settings_hash()` fingerprints them so each decision and audit entry can name
the exact parameters that produced it.

Environment variables:
    TRADING_DATA_DIR        runtime folder (default: <project>/data)
    TRADING_DB_PATH         DuckDB file (default: <data dir>/trading.duckdb)
    TRADING_AUDIT_DIR       JSONL audit mirror (default: <data dir>/audit)
    TRADING_HISTORY_START   first session of the partitions (default: five years before today)
    TRADING_UNIVERSE        universe file, CSV or JSON (default: the packaged 250+ large caps)
    TRADING_PROVIDERS       comma-separated provider order for the router (default: synthetic)
    TRADING_LOCAL_DATA_DIR  folder(s) or file(s) of CSV/Parquet for the local provider, joined by os.pathsep
    TRADING_SEED            seed of the synthetic market and of the bandit (default 7)
    TRADING_WORKERS         parallel provider fetches (default 4)
    TRADING_INITIAL_CAPITAL starting NAV of the paper book (default 1,000,000)
    TRADING_MODE            paper (default) or live (execution.mode; live needs TRADING_BROKER)
    TRADING_BROKER          the live broker's name (execution.broker)
    TRADING_ALGO            execution algorithm: market_on_open (default), twap, vwap (execution.algo)
    TRADING_BROKER_URL      the broker's endpoint (default: its paper endpoint; execution.broker_url)
    TRADING_MODELS_FIRST_TRAINING  no learned model trains before this session (ISO date; default: none)
    TRADING_MODELS_MLFLOW   0 turns off MLflow logging of training runs (default 1)

One Settings object per run: the environment is read once, here, at the edge (the CLI's process,
or the code location's process for runs launched from the UI and schedules); the CLI turns its
flags into a Settings and hands the whole of it to the run through the `pipeline` resource's run
config (`settings_from_dict` rebuilds it there); nothing sets TRADING_* variables to pass settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_ROOT = Path(__file__).resolve().parent
DEFAULT_UNIVERSE_FILE = PACKAGE_ROOT / "universe" / "us_large_caps.csv"
BENCHMARK_SYMBOL = "SPY"


def _default_history_start(today: date | None = None) -> date:
    today = today or date.today()
    try:
        return today.replace(year=today.year - 5)
    except ValueError:  # 29 February
        return today.replace(year=today.year - 5, day=28)


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds of the data-quality rules (domain/quality.py)."""

    pass_score: float = 0.7  # a bar scoring below this fails quality -> REJECT downstream
    stale_run: int = 5  # this many identical closes in a row (incl. today) = stale
    robust_return_z: float = 12.0  # |log return| beyond this many robust sigmas with no corporate action
    min_abs_jump: float = 0.25  # ... and at least this large in absolute log terms
    late_start_sessions: int = 20  # see the LATE_START note below
    max_failing_share: float = 0.25  # more than this share of the universe failing on one session = a systemic fault
    # --- added with domain/quality.py (see its docstring for each rule) ---
    # LATE_START marks the first `late_start_sessions` sessions of a series whose first bar comes after
    # the first session read (so it must be <= lookback_sessions to be run-boundary independent).
    lookback_sessions: int = 60  # sessions of history read before the window (trailing medians, MAD)
    min_history: int = 5  # past bars needed before a trailing median / MAD is trusted
    low_volume_ratio: float = 0.01  # volume < this x trailing median volume = near-empty bar
    flat_bar_volume_ratio: float = 0.10  # O=H=L=C with volume < this x trailing median = flat thin bar
    range_tolerance: float = 1e-6  # relative slack on the [low, high] checks (float rounding of adjusted prices)
    split_ratios: tuple[float, ...] = (0.5, 1 / 3, 0.25, 2.0, 3.0, 4.0)  # close/prev-close ratios of a split
    split_tolerance: float = 0.05  # |log r - log ratio| below this = split-like
    reversal_fraction: float = 0.75  # next move undoes >= 75% of a flagged jump (|r1 + r2| <= 0.25 |r1|)
    max_price_ratio: float = 10.0  # a 10x (or 1/10) move with no action is a unit error: RETURN_OUTLIER
    # --- extreme moves and systemic faults (#16; domain/quality.py "Held moves", domain/session_health.py) ---
    # A jump (LARGE_MOVE, UNADJUSTED_SPLIT or RETURN_OUTLIER: beyond max(robust_return_z * sigma,
    # min_abs_jump), the configurable bound) with no recorded action is held (MOVE_UNCONFIRMED: REJECT)
    # until `confirm_sessions` more bars confirm it (not reverted) or refute it (reverted: a bad bar).
    confirm_sessions: int = 2
    level_tolerance: float = 0.5  # a confirmed move is a level shift when every confirming close stays within
    # this fraction of the move from the new level (|ln C_{e+j} - ln C_e| <= level_tolerance * |r_e|)
    # Which level shifts become an inferred corporate action (RELIABILITY.md "Extreme moves"): "splits"
    # (split-like ratios and 10x unit errors only), "down" (also downward shifts: spin-offs, special
    # dividends -- and news-driven drops, which prices alone cannot tell apart), "all" (also upward ones).
    infer_shifts: str = "down"
    # When more than max_failing_share of the universe fails on a session: "halt_session" halts that
    # session (every decision REJECT SYSTEMIC_DATA_FAULT, no fills or orders) and the run goes on;
    # "stop_run" stops the run at the blocking check (the behaviour before #16). Env: TRADING_ON_SYSTEMIC_FAULT.
    on_systemic_fault: str = "halt_session"
    # Score = max(0, 1 - sum of the penalties of the codes raised); a row passes at >= pass_score, so
    # any penalty above 1 - pass_score fails on its own; informational codes cost 0 or 0.1-0.2.
    penalties: tuple[tuple[str, float], ...] = (
        ("MISSING_BAR", 1.0),
        ("NOT_LISTED", 1.0),
        ("NO_PROVIDER", 1.0),
        ("NON_POSITIVE_PRICE", 1.0),
        ("MISSING_FIELD", 0.5),
        ("HIGH_BELOW_LOW", 0.5),
        ("OPEN_OUTSIDE_RANGE", 0.4),
        ("CLOSE_OUTSIDE_RANGE", 0.5),
        ("ZERO_VOLUME", 0.5),
        ("LOW_VOLUME", 0.4),
        ("FLAT_BAR", 0.4),
        ("STALE_PRICE", 0.4),
        ("RETURN_OUTLIER", 0.5),
        ("REVERSED_SPIKE", 0.5),
        ("UNADJUSTED_SPLIT", 0.6),
        ("DUPLICATE_ROW", 0.2),
        ("OFF_CALENDAR", 0.2),
        ("LARGE_MOVE", 0.1),
        ("LATE_START", 0.0),
        ("SYNTHETIC_DATA", 0.0),
        ("REVERTED_MOVE", 0.5),
        ("MOVE_UNCONFIRMED", 0.0),  # not a data error: the decision is REJECT (UNCONFIRMED_MOVE) until resolved
        ("MOVE_CONFIRMED", 0.0),
        ("LEVEL_SHIFT_INFERRED", 0.0),
    )


@dataclass(frozen=True)
class FeatureSettings:
    """Feature computation (domain/features)."""

    annualization: int = 252
    ewma_lambda_fast: float = 0.94
    ewma_lambda_slow: float = 0.97
    ewma_min_obs: int = 20  # lambda-based EWMA vols (ewma_vol_fast/slow) are null before this many returns
    beta_min_coverage: float = 0.9  # beta/corr/...: share of the window's bars that must have a benchmark return


@dataclass(frozen=True)
class AgentSettings:
    """Parameters of the six agents (domain/agents).

    Units: every agent's mu and sigma are the expected simple return and its standard deviation over
    `horizon_sessions` sessions (default one session, i.e. daily decimals); confidence is in [0, 1].
    Each agent turns its features into components c_i in [-1, 1] (mostly tanh(x / scale)), a score
    S = mean_i(c_i) over the available components, and applies Grinold's rule
    mu = IC * sigma * S, where the IC ("*_scale" below) is the agent's information coefficient.
    """

    horizon_sessions: int = 1  # mu scales with h, sigma with sqrt(h)
    annualization: int = 252  # sessions per year: annualized vol / sqrt(252) = daily vol
    # Momentum: IC and the tanh scale of each trend feature (feature name, scale).
    momentum_scale: float = 0.05
    momentum_components: tuple[tuple[str, float], ...] = (
        ("mom_12_1", 0.30),  # 12-1 month momentum (Jegadeesh-Titman), typical cross-sectional sd ~0.3
        ("mom_6m", 0.20),
        ("mom_3m", 0.10),
        ("px_sma_200", 0.10),  # distance to the 200-session trend line
    )
    # Mean reversion: IC, scales of (-zscore_20, 50 - rsi_14, 0.5 - bb_pctb_20), and the |zscore_20| at
    # which the agent is fully confident (reversion only matters at extremes).
    mean_reversion_scale: float = 0.02
    mean_reversion_z_scale: float = 2.0
    mean_reversion_rsi_scale: float = 20.0
    mean_reversion_pctb_scale: float = 0.5
    mean_reversion_full_z: float = 2.0
    # Volatility (low-volatility anomaly): IC, scales of the rank / vol-trend / level components,
    # the annualized level below which a name counts as calm, and the EWMA weight of its sigma blend.
    volatility_scale: float = 0.02
    volatility_rank_scale: float = 0.25
    volatility_trend_scale: float = 0.25
    volatility_target: float = 0.15
    volatility_blend: float = 0.7  # sigma^2 = b * ewma_vol_20^2 + (1 - b) * vol_60^2
    # Liquidity: IC, the 21-day dollar ADV below which a name is penalized, and the scales of
    # ln(adv_dollar_21d / min) and of ln(volume_ratio_20) (volume confirming the 5-day move).
    liquidity_scale: float = 0.01
    liquidity_min_dollar_adv: float = 5_000_000.0
    liquidity_adv_scale: float = 1.0
    liquidity_flow_scale: float = 0.5
    # Pattern: IC and the stochastic oversold / overbought levels.
    pattern_scale: float = 0.01
    pattern_stoch_low: float = 20.0
    pattern_stoch_high: float = 80.0
    # Regime: IC of the market view, benchmark vol levels (annualized) for risk-on / risk-off, the
    # tanh scale of the benchmark's px_sma_200, the |score| that leaves neutral, and the beta cap.
    regime_scale: float = 0.02
    regime_risk_off_vol: float = 0.25
    regime_risk_on_vol: float = 0.15
    regime_trend_scale: float = 0.05
    regime_threshold: float = 0.25
    regime_beta_cap: float = 3.0
    # Statistical agents (issue #13). Fits on a fixed calendar grid: every *_cadence sessions from the
    # calendar's first session (calendar.cadence_session), on the trailing *_window sessions; *_stagger:
    # per-symbol agents give each symbol its own phase of that grid (history.phase = sha256(symbol) mod
    # cadence), so every session refits ~1/cadence of the universe instead of all of it one day in cadence.
    # GARCH(1,1)-t volatility (domain/garch.py, agents/garch_vol.py): the IC of its vol-timing signal
    # tanh((1 - sigma_t / sigma_long) / garch_ratio_scale), its base confidence, the fewest returns a fit needs.
    garch_cadence: int = 21  # monthly (the default): within the 30-s backfill budget since the Newton fit (benchmarks/stat_agents.py)
    garch_window: int = 756
    garch_stagger: bool = True  # each symbol refits on its own phase of the grid (history.phase): ~1/cadence a session
    garch_min_obs: int = 250
    garch_max_iter: int = 50  # a series still moving after this is "not converged": trailing-sigma fallback
    garch_tol: float = 1e-7  # convergence: mean log-likelihood gain per iteration below this
    garch_scale: float = 0.02
    garch_ratio_scale: float = 0.25
    garch_confidence: float = 0.5
    # HMM regime (domain/hmm.py, agents/hmm_regime.py): states, seeds, EM iterations, the IC of the market view.
    hmm_cadence: int = 63
    hmm_window: int = 756
    hmm_states: int = 3
    hmm_seeds: int = 3
    hmm_iter: int = 100
    hmm_min_obs: int = 250
    hmm_scale: float = 0.02
    # EVT tail risk (domain/tail_risk.py, agents/evt_tail.py): POT threshold quantile, the fewest
    # exceedances for a GPD fit, the IC and tanh scale of the heavy-tail penalty.
    evt_cadence: int = 21
    evt_window: int = 756
    evt_stagger: bool = True
    evt_threshold_q: float = 0.95
    evt_min_exceedances: int = 25
    evt_scale: float = 0.02
    evt_heavy_scale: float = 0.25
    evt_confidence: float = 0.5
    # Ablation: agents (registry.AGENTS) and trained model families (registry.TRAINED_AGENTS, e.g.
    # "gbm_ranker", "ranknet") left out of the run by name. A disabled agent writes no model_outputs rows
    # and no fits; a disabled family neither trains nor scores. Unknown names are an error
    # (registry.check_disabled, at the CLI and in every asset that runs agents).
    disabled: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetaBrainSettings:
    """Meta-Brain parameters (domain/meta_brain.py). mu in the agents' units (daily decimals)."""

    # exp(-beta * Var_k(mu_k)): agents at +6 and -2 bp/day (equal weights) give Var = 1.6e-7 -> factor 0.53.
    disagreement_beta: float = 4.0e6
    z_clip: float = 3.0  # |z| clipped here (Qlib's RobustZScoreNorm clips at 3); 0 = no clipping
    kelly_gamma: float = 0.25  # fractional Kelly
    min_trade_weight: float = 0.002  # |target - current| below this -> HOLD
    min_confidence: float = 0.05  # an agent below this confidence is silent; all silent -> NO_SIGNAL
    high_disagreement_penalty: float = 0.5  # flag HIGH_DISAGREEMENT when exp(-beta * Var) < this
    top_n: int = 5  # top buys / sells reported in metadata
    # Reliability (domain/calibration.py): each agent's confidence x min(1, IC* / full_ic), IC* = the mean of the
    # out-of-sample daily rank ICs known in its last calibration_window sessions, shrunk by its t-statistic (x max(0, 1 - 1/t^2)), computed at the
    # model cadence sessions only; 0 before calibration_min_sessions label sessions are known (issue #12).
    calibrate: bool = True
    calibration_window: int = 252  # label sessions of the rolling OOS rank IC (SE of the mean ~ 0.1 / sqrt(252) = 0.006)
    calibration_min_sessions: int = 63
    calibration_full_ic: float = 0.02  # a rolling rank IC at or above this keeps the agent's own confidence (a priori)
    # The agent whose sigma is every symbol's sigma in the mixture (the GARCH forecast, or its
    # trailing fallback); "" = each agent's own sigma. Regime: the first of these agents with a state.
    sigma_agent: str = "garch"
    regime_agents: tuple[str, ...] = ("hmm_regime", "regime")


@dataclass(frozen=True)
class ModelSettings:
    """Learned models trained walk-forward (domain/models, domain/agents/trained.py; issue #12).

    Cadence: session t retrains when its index counted from `anchor` (calendar sessions) is a multiple of
    `cadence`, so a daily run and a range run retrain on the same sessions. Purge: a model trained at t
    uses labels of decision dates s <= t - horizon - purge_extra sessions (and known_at <= t).
    """

    cadence: int = 21  # retrain every 21 sessions (about monthly)
    anchor: date = date(2000, 1, 3)  # session 0 of the cadence count (fixed: never the run's window)
    horizon: int = 1  # label horizon (sessions) the models learn: the labels table's h = 1
    purge_extra: int = 1  # gap = horizon + this: last training label date <= t - horizon - 1
    window_years: int = 0  # 0 = expanding window; N = sliding N years (a variant may override)
    min_train_sessions: int = 252  # fewer label sessions in the window -> NOT_TRAINED (the model is silent)
    first_training: date | None = None  # no training before this session (None = as soon as there is history)
    # Beyond this, every k-th session (k = ceil(rows / max)) from the last one back. 100,000 rows = 200 whole
    # sessions of 500 names; chosen for speed only (a fit's cost is linear in rows; 200,000 before), a priori.
    max_train_rows: int = 100_000
    num_threads: int = 1  # LightGBM threads (fixed: deterministic=True needs a fixed count; 1 measured faster on the shared 2-core box)
    ic_window: int = 126  # rolling out-of-sample rank IC (label sessions) for Grinold's mu and the confidence
    ic_min_sessions: int = 21  # fewer OOS label sessions -> the model is silent (NO_OOS_HISTORY)
    confidence_full_t: float = 3.0  # confidence = clip(t-stat of the rolling OOS rank IC / this, 0, 1)
    promotion_window: int = 126  # label sessions of the paired comparison challenger vs champion
    promotion_t: float = 2.0  # a challenger replaces the champion when the paired t-statistic >= this
    promotion_min_sessions: int = 63  # fewer paired sessions -> no promotion
    mlflow: bool = True  # log every training run and version to the local MLflow store under data_dir/mlflow
    # Deep families (torch, issue #17) retrain every cadence x this sessions (126: about twice a year). They
    # start as shadows, are scored every session, and must beat their incumbent to reach the Meta-Brain; a
    # CPU retrain of the transformer with its diagnostics cost ~11 s, a third of the 5-year backfill's
    # training time at 3 (issue #12: the backfill with its retrains within 2x the one without). Speed only,
    # set a priori (not from the out-of-sample record).
    deep_cadence_multiple: int = 6
    # Challengers (a non-deep family's variants after the first) retrain every cadence x this sessions (126,
    # as the deep shadows): a shadow only has to stay comparable, and the backfill's cost is mostly fits
    # (issue #12: within 2x the backfill without retrains; at 3 the challengers' fits were ~100 s of a
    # 677-s backfill). A promoted challenger keeps this cadence (trained.cadence_multiple says why).
    # Speed only, set a priori (not from the out-of-sample record).
    shadow_cadence_multiple: int = 6


@dataclass(frozen=True)
class RiskSettings:
    """Risk limits and adjustments (domain/risk.py). Fractions of NAV unless stated."""

    max_single_name: float = 0.10
    max_sector: float = 0.15
    max_gross_leverage: float = 1.0
    cvar_confidence: float = 0.95
    cvar_limit: float = 0.03  # one-day 95% CVaR of the proposed book, as a fraction of NAV
    cvar_lookback: int = 252
    max_adv_fraction: float = 0.10  # each order <= 10% of the symbol's 20-day ADV (shares)
    tail_prob_limit: float = 0.05  # P(one-day loss > tail_loss_threshold): EVT where it applies, else Student-t(tail_dof)
    tail_loss_threshold: float = 0.05
    tail_dof: float = 4.0
    vol_target: float = 0.15  # annualized portfolio volatility target for volatility scaling
    drawdown_k: float = 5.0  # exposure scale exp(-k * DD)
    risk_off_multiplier: float = 0.7
    halt_drawdown: float = 0.20  # DD beyond this -> HALTED
    reducing_drawdown: float = 0.10  # DD beyond this -> REDUCING
    recovery_phases: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    recovery_sessions_per_phase: int = 5
    min_trade_weight: float = 0.002  # |order| below this fraction of NAV -> HOLD (unless a limit forces a sell)
    scale_search_iterations: int = 40  # bisection steps when scaling the book under the CVaR / tail limits
    # EVT (domain/tail_risk.py) for the proposed book's tail probability and CVaR check: a GPD on the
    # losses beyond the tail_threshold_q quantile of the trailing tail_lookback sessions, used when at
    # least tail_min_exceedances exceed it; historical (CVaR) and Student-t(tail_dof) otherwise.
    tail_model: str = "evt"  # "evt" or "historical" (the pre-#13 Student-t / historical measures)
    tail_lookback: int = 756
    tail_threshold_q: float = 0.95
    tail_min_exceedances: int = 25


@dataclass(frozen=True)
class ExecutionSettings:
    """Paper execution (domain/execution.py)."""

    initial_capital: float = 1_000_000.0
    slippage_bps: float = 5.0
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    mode: str = "paper"  # "paper" or "live"; live needs a configured broker
    broker: str = ""  # name of a configured live broker; empty = none
    # --- execution algorithms (domain/execution_algos.py) ---
    algo: str = "market_on_open"  # "market_on_open" (fills at the next open), "twap" or "vwap" across session t+1
    slices: int = 13  # child orders (equal time slots of the 390-minute session: 13 x 30 min)
    participation_cap: float = 0.10  # each child <= this share of its slot's expected volume (ADV_t x profile)
    leftover: str = "cancel"  # what the cap leaves undone: "cancel" or "carry" (to the next session)
    path_steps: int = 390  # minutes of the seeded intraday paper path
    # --- the live broker (domain/brokers/): keys come from the environment at the edge, never from here ---
    broker_url: str = ""  # "" = the broker's paper endpoint; a URL overrides it (a local replay server in tests)
    retry_attempts: int = 4  # retries of a request answered 429 or 5xx (or not answered)
    retry_wait_s: float = 1.0  # first wait between retries; doubles each time (429: Retry-After when given)
    cash_tolerance: float = 0.01  # live reconciliation: |book cash - broker cash| <= this x book NAV

    def __post_init__(self) -> None:
        if self.algo not in ("market_on_open", "twap", "vwap"):
            raise ValueError(f"execution algo {self.algo!r}: expected market_on_open, twap or vwap")
        if self.leftover not in ("cancel", "carry"):
            raise ValueError(f"execution leftover {self.leftover!r}: expected cancel or carry")
        if self.slices < 1 or not 0 < self.participation_cap <= 1:
            raise ValueError(f"execution slices {self.slices} must be >= 1 and participation_cap "
                             f"{self.participation_cap} in (0, 1]")


@dataclass(frozen=True)
class CostSettings:
    """Trading-cost model (domain/costs.py): market impact after Almgren, Thum, Hauptmann and Li (2005),
    "Direct estimation of equity market impact", Risk 18(7), as QuantConnect Lean's
    MarketImpactSlippageModel (Common/Orders/Slippage/MarketImpactSlippageModel.cs), plus the half spread
    (ExecutionSettings.slippage_bps) and the commission (ExecutionSettings.commission_per_share)."""

    impact_eta: float = 0.142  # temporary impact coefficient (Almgren et al. 2005; Lean's default eta)
    impact_beta: float = 0.6  # temporary impact exponent, 3/5 (Almgren et al. 2005; Lean's beta)
    impact_gamma: float = 0.314  # permanent impact coefficient (Almgren et al. 2005; Lean's gamma)
    impact_alpha: float = 0.891  # permanent impact exponent (Almgren et al. 2005; Lean's alpha)
    execution_sessions: float = 1.0  # T: an order is worked over one session (Almgren's T in trading days)
    max_impact: float = 1.0  # impact at most the price itself (Lean caps the slippage at 1)
    # the optimizer's convex stand-in for the impact: b |x|^optimizer_exponent, matched to the model at
    # the largest trade the ADV limit allows (an upper bound of the model below it: both exponents > 3/2)
    optimizer_exponent: float = 1.5


@dataclass(frozen=True)
class PortfolioSettings:
    """Portfolio construction before the risk gate (domain/optimizer.py, domain/portfolio_methods.py)."""

    method: str = "kelly_mv"  # "kelly_mv" (multi-asset Kelly optimizer) | "kelly_diagonal" (the Meta-Brain's
    #                           per-name gamma mu / sigma^2) | "topk_dropout" (qlib's TopkDropoutStrategy)
    # a trade's cost is paid once, the edge mu every session it is held: the optimizer charges cost / H per
    # session, H = the sessions a position is expected to be held (Grinold and Kahn's amortization of
    # transaction costs; one month, a choice stated, not tuned). H = 1 compares a one-off cost with one
    # session's edge, and the daily mu_hat of a few basis points never pays for the spread.
    cost_horizon_sessions: float = 21.0
    risk_factors: int = 10  # principal components of the trailing correlation in Sigma's factor model
    specific_floor: float = 0.05  # smallest specific share of a name's variance (conditioning of Sigma)
    max_screen_rounds: int = 4  # solves per session when screened-out names turn out to belong in the program
    screen_tolerance: float = 1e-9  # a left-out name joins when its marginal gain beats its cost by more
    topk: int = 50  # topk_dropout: names held (qlib's benchmark setting, topk=50)
    n_drop: int = 5  # topk_dropout: names replaced per session at most (qlib's benchmark setting, n_drop=5)
    risk_degree: float = 0.95  # topk_dropout: share of NAV invested (qlib's default risk_degree)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_path: Path
    audit_dir: Path
    history_start: date
    universe_file: Path
    providers: tuple[str, ...] = ("synthetic",)
    local_data_dir: Path | None = None
    local_data_extra: tuple[Path, ...] = ()  # more folders/files the local provider reads after local_data_dir
    seed: int = 7
    workers: int = 4
    benchmark: str = BENCHMARK_SYMBOL
    quality: QualitySettings = field(default_factory=QualitySettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    meta: MetaBrainSettings = field(default_factory=MetaBrainSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)
    costs: CostSettings = field(default_factory=CostSettings)
    portfolio: PortfolioSettings = field(default_factory=PortfolioSettings)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: dict) -> "Settings":
        """These settings with some fields replaced, nested by section, from JSON-like values, e.g.
        {"history_start": "2021-01-04", "execution": {"mode": "live"}} (what run config carries)."""
        return settings_from_dict(overrides, base=self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        """The inverse of to_dict(): Settings.from_dict(s.to_dict()) == s."""
        return settings_from_dict(d)

    def to_dict(self) -> dict:
        return _jsonable(dataclasses.asdict(self))

    def settings_hash(self) -> str:
        """sha256 of the parameters that change numbers (paths excluded), first 16 hex digits."""
        d = self.to_dict()
        # Where files live is not what they hold: the same data from another folder keeps its cycle ids.
        for volatile in ("data_dir", "db_path", "audit_dir", "workers", "local_data_dir", "local_data_extra",
                         "universe_file"):
            d.pop(volatile, None)
        # Where the broker answers and how often a request is retried change no number either (a replay
        # server's port must not change the order ids that make a resubmission idempotent).
        for volatile in ("broker_url", "retry_attempts", "retry_wait_s"):
            d.get("execution", {}).pop(volatile, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (Path, date)):
        return str(obj)
    return obj


def _convert(value, hint):
    """A JSON-like value (str dates and paths, lists for tuples) as the type `hint` of a settings field."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if dataclasses.is_dataclass(hint):
        return _from_dict(hint, value, None)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0]) if len(inner) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0]) for v in value)
        return tuple(_convert(v, a) for v, a in zip(value, args)) if args else tuple(value)
    if origin is list:
        return [_convert(v, args[0]) for v in value] if args else list(value)
    if origin is dict:
        return {k: _convert(v, args[1]) for k, v in value.items()} if args else dict(value)
    if hint is Path:
        return Path(value)
    if hint is date:
        return value if isinstance(value, date) else date.fromisoformat(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _from_dict(cls, d: dict, base):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {unknown}; known: {sorted(names)}")
    changes = {}
    for name, value in d.items():
        hint = hints[name]
        current = getattr(base, name) if base is not None else None
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            changes[name] = _from_dict(hint, value, current)
        else:
            changes[name] = _convert(value, hint)
    return dataclasses.replace(base, **changes) if base is not None else cls(**changes)


def settings_from_dict(d: dict, base: Settings | None = None) -> Settings:
    """Settings from JSON-like values (to_dict()'s output, or run config): with `base`, only the
    fields present are replaced (sections merge field by field); without, every required field must
    be there. Unknown fields are an error (a typo must not be silently ignored)."""
    return _from_dict(Settings, d, base)


def _local_paths(text: str | None) -> tuple[Path, ...]:
    """TRADING_LOCAL_DATA_DIR: paths joined by os.pathsep, resolved."""
    return tuple(Path(p).resolve() for p in (text or "").split(os.pathsep) if p.strip())


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment (os.environ by default)."""
    env = dict(os.environ if env is None else env)
    data_dir = Path(env.get("TRADING_DATA_DIR") or PROJECT_ROOT / "data").resolve()
    db_path = Path(env.get("TRADING_DB_PATH") or data_dir / "trading.duckdb").resolve()
    audit_dir = Path(env.get("TRADING_AUDIT_DIR") or data_dir / "audit").resolve()
    start_text = env.get("TRADING_HISTORY_START")
    history_start = date.fromisoformat(start_text) if start_text else _default_history_start()
    providers = tuple(p.strip() for p in env.get("TRADING_PROVIDERS", "synthetic").split(",") if p.strip())
    local = env.get("TRADING_LOCAL_DATA_DIR")
    capital = float(env.get("TRADING_INITIAL_CAPITAL", "1000000"))
    return Settings(
        data_dir=data_dir,
        db_path=db_path,
        audit_dir=audit_dir,
        history_start=history_start,
        universe_file=Path(env.get("TRADING_UNIVERSE") or DEFAULT_UNIVERSE_FILE).resolve(),
        providers=providers,
        local_data_dir=(_local_paths(local) or (None,))[0],
        local_data_extra=_local_paths(local)[1:],
        seed=int(env.get("TRADING_SEED", "7")),
        workers=int(env.get("TRADING_WORKERS", "4")),
        quality=QualitySettings(on_systemic_fault=_systemic_fault_mode(env.get("TRADING_ON_SYSTEMIC_FAULT", "halt_session"))),
        models=ModelSettings(
            first_training=date.fromisoformat(env["TRADING_MODELS_FIRST_TRAINING"]) if env.get("TRADING_MODELS_FIRST_TRAINING") else None,
            mlflow=env.get("TRADING_MODELS_MLFLOW", "1") not in ("0", "false", "no"),
        ),
        execution=ExecutionSettings(
            initial_capital=capital,
            mode=_mode(env.get("TRADING_MODE", "paper")),
            broker=env.get("TRADING_BROKER", ""),
            algo=env.get("TRADING_ALGO", "market_on_open"),
            broker_url=env.get("TRADING_BROKER_URL", ""),
        ),
        portfolio=PortfolioSettings(method=_method(env.get("TRADING_PORTFOLIO_METHOD", "kelly_mv"))),
    )


EXECUTION_MODES = ("paper", "live")
SYSTEMIC_FAULT_MODES = ("halt_session", "stop_run")


def _systemic_fault_mode(text: str) -> str:
    mode = text.strip().lower() or "halt_session"
    if mode not in SYSTEMIC_FAULT_MODES:
        raise ValueError(f"TRADING_ON_SYSTEMIC_FAULT={text!r}: expected one of {SYSTEMIC_FAULT_MODES}")
    return mode


PORTFOLIO_METHODS = ("kelly_mv", "kelly_diagonal", "topk_dropout")


def _method(text: str) -> str:
    method = text.strip().lower() or "kelly_mv"
    if method not in PORTFOLIO_METHODS:
        raise ValueError(f"TRADING_PORTFOLIO_METHOD={text!r}: expected one of {PORTFOLIO_METHODS}")
    return method


def _mode(text: str) -> str:
    mode = text.strip().lower() or "paper"
    if mode not in EXECUTION_MODES:
        raise ValueError(f"TRADING_MODE={text!r}: expected one of {EXECUTION_MODES}")
    return mode


# --- operating the graph in Dagster (defs/automation.py, explain.py) --------------------------------
@dataclass(frozen=True)
class OpsSettings:
    """Schedule, freshness, alerting and reader settings. Kept out of `Settings` (and so out of
    settings_hash): none of them changes a number in any table.

    Environment: TRADING_WEBHOOK_URL (run failures are POSTed there as JSON when set),
    TRADING_FRESHNESS_DEADLINE (HH:MM New York time, default 19:30).
    """

    timezone: str = "America/New_York"  # the exchange's clock: schedule and deadline are in NY time
    schedule_cron: str = "0 18 * * 1-5"  # daily cycle: 18:00 NY Mon-Fri, two hours after the 16:00 close
    freshness_deadline: str = "19:30"  # the session that closed today must be in price_history by then
    webhook_url: str = ""  # empty = no webhook; failures still go to audit_log
    webhook_timeout_s: float = 5.0  # a slow webhook must not stall the sensor daemon
    reader_lock_timeout_s: float = 10.0  # explain waits this long for a writer's lock, then says so
    audit_lock_timeout_s: float = 45.0  # the failure sensor waits this long to append to audit_log


def load_ops_settings(env: dict[str, str] | None = None) -> OpsSettings:
    """OpsSettings from the environment (os.environ by default)."""
    env = dict(os.environ if env is None else env)
    deadline = env.get("TRADING_FRESHNESS_DEADLINE", OpsSettings.freshness_deadline)
    hh, _, mm = deadline.partition(":")
    if not (hh.isdigit() and mm.isdigit() and 0 <= int(hh) < 24 and 0 <= int(mm) < 60):
        raise ValueError(f"TRADING_FRESHNESS_DEADLINE={deadline!r}: expected HH:MM (24-hour, New York time)")
    return OpsSettings(freshness_deadline=f"{int(hh):02d}:{int(mm):02d}", webhook_url=env.get("TRADING_WEBHOOK_URL", "").strip())
