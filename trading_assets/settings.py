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
    TRADING_LOCAL_DATA_DIR  folder of CSV/Parquet for the local provider
    TRADING_SEED            seed of the synthetic market and of the bandit (default 7)
    TRADING_WORKERS         parallel provider fetches (default 4)
    TRADING_INITIAL_CAPITAL starting NAV of the paper book (default 1,000,000)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
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
    late_start_sessions: int = 20  # series starting this many sessions after the window start = late
    max_failing_share: float = 0.25  # blocking check: share of the universe failing on one session


@dataclass(frozen=True)
class FeatureSettings:
    """Feature computation (domain/features)."""

    annualization: int = 252
    ewma_lambda_fast: float = 0.94
    ewma_lambda_slow: float = 0.97


@dataclass(frozen=True)
class AgentSettings:
    """Parameters of the six agents (domain/agents). Horizon of mu/sigma: one session (daily)."""

    horizon_sessions: int = 1
    momentum_scale: float = 0.05
    mean_reversion_scale: float = 0.02
    volatility_target: float = 0.15
    liquidity_min_dollar_adv: float = 5_000_000.0
    pattern_scale: float = 0.01
    regime_risk_off_vol: float = 0.25
    regime_risk_on_vol: float = 0.15


@dataclass(frozen=True)
class MetaBrainSettings:
    """Meta-Brain parameters (domain/meta_brain.py)."""

    disagreement_beta: float = 2.0e4  # exp(-beta * Var(mu_k)) with daily mu: Var ~1e-5 -> ~0.8
    z_clip: float = 3.0
    kelly_gamma: float = 0.25  # fractional Kelly
    min_trade_weight: float = 0.002  # |target - current| below this -> HOLD
    min_confidence: float = 0.05  # all agents below this -> no signal


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
    tail_prob_limit: float = 0.05  # P(one-day loss > tail_loss_threshold) under Student-t
    tail_loss_threshold: float = 0.05
    tail_dof: float = 4.0
    vol_target: float = 0.15  # annualized portfolio volatility target for volatility scaling
    drawdown_k: float = 5.0  # exposure scale exp(-k * DD)
    risk_off_multiplier: float = 0.7
    halt_drawdown: float = 0.20  # DD beyond this -> HALTED
    reducing_drawdown: float = 0.10  # DD beyond this -> REDUCING
    recovery_phases: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    recovery_sessions_per_phase: int = 5


@dataclass(frozen=True)
class ExecutionSettings:
    """Paper execution (domain/execution.py)."""

    initial_capital: float = 1_000_000.0
    slippage_bps: float = 5.0
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    mode: str = "paper"  # "paper" or "live"; live needs a configured broker
    broker: str = ""  # name of a configured live broker; empty = none


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_path: Path
    audit_dir: Path
    history_start: date
    universe_file: Path
    providers: tuple[str, ...] = ("synthetic",)
    local_data_dir: Path | None = None
    seed: int = 7
    workers: int = 4
    benchmark: str = BENCHMARK_SYMBOL
    quality: QualitySettings = field(default_factory=QualitySettings)
    features: FeatureSettings = field(default_factory=FeatureSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)
    meta: MetaBrainSettings = field(default_factory=MetaBrainSettings)
    risk: RiskSettings = field(default_factory=RiskSettings)
    execution: ExecutionSettings = field(default_factory=ExecutionSettings)

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return _jsonable(dataclasses.asdict(self))

    def settings_hash(self) -> str:
        """sha256 of the parameters that change numbers (paths excluded), first 16 hex digits."""
        d = self.to_dict()
        for volatile in ("data_dir", "db_path", "audit_dir", "workers"):
            d.pop(volatile, None)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (Path, date)):
        return str(obj)
    return obj


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
        local_data_dir=Path(local).resolve() if local else None,
        seed=int(env.get("TRADING_SEED", "7")),
        workers=int(env.get("TRADING_WORKERS", "4")),
        execution=ExecutionSettings(
            initial_capital=capital,
            broker=env.get("TRADING_BROKER", ""),
        ),
    )
