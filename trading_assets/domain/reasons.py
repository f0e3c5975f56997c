"""The reason-code vocabulary: every flag, decision and denial in the pipeline names one of these.

Codes are stable strings (stored in tables and audit logs); add, never rename.
"""

from __future__ import annotations

# --- decisions -------------------------------------------------------------------------------
EXECUTE_BUY = "EXECUTE_BUY"
EXECUTE_SELL = "EXECUTE_SELL"
HOLD = "HOLD"
REJECT = "REJECT"
DECISIONS = (EXECUTE_BUY, EXECUTE_SELL, HOLD, REJECT)

# --- data quality (domain/quality.py) ----------------------------------------------------------
QUALITY_CODES: dict[str, str] = {
    "MISSING_BAR": "no bar for a session of the calendar (gap, or no provider served the symbol)",
    "MISSING_FIELD": "open, high, low, close or volume is null",
    "NON_POSITIVE_PRICE": "a price is zero or negative",
    "HIGH_BELOW_LOW": "high < low",
    "OPEN_OUTSIDE_RANGE": "open outside [low, high]",
    "CLOSE_OUTSIDE_RANGE": "close outside [low, high]",
    "ZERO_VOLUME": "volume is zero or missing",
    "LOW_VOLUME": "volume is a tiny fraction of the symbol's median volume (near-empty bar)",
    "FLAT_BAR": "open = high = low = close on a thin bar",
    "STALE_PRICE": "the close repeated for several sessions in a row",
    "DUPLICATE_ROW": "the provider delivered the same (date, symbol) more than once",
    "RETURN_OUTLIER": "return beyond the robust threshold with no corporate action (bad tick)",
    "REVERSED_SPIKE": "an outlier move reversed the next session (a bad bar, not news)",
    "UNADJUSTED_SPLIT": "a split-like jump (about 1/2, 1/3, 2x ...) with no split recorded",
    "LATE_START": "one of the first sessions of a series that starts after the first session read (listed during the history)",
    "NO_PROVIDER": "no configured provider could serve the symbol",
    "SYNTHETIC_DATA": "bar comes from the synthetic market (informational)",
    # added with domain/quality.py:
    "LARGE_MOVE": "return beyond the robust threshold, not split-like: news or a bad bar, unknown yet (informational)",
    "NOT_LISTED": "no bar in the lookback before this session: not listed yet (before a late start), delisted, or never delivered",
    "OFF_CALENDAR": "the provider sent a bar dated on a non-session day (flagged on the next session)",
    # added with the held moves of domain/quality.py (#16):
    "MOVE_UNCONFIRMED": "a jump with no corporate action in this or the last bars, neither confirmed nor refuted yet: held (not traded)",
    "MOVE_CONFIRMED": "a held jump was not reverted by the confirming bars: a real move (no action inferred); trading resumes",
    "LEVEL_SHIFT_INFERRED": "a held jump kept its new level on every confirming bar: recorded as an inferred corporate action",
    "REVERTED_MOVE": "a held jump reverted after two or more bars: the bars between were a bad level, not news",
}

# --- Meta-Brain and risk ---------------------------------------------------------------------
DATA_QUALITY = "DATA_QUALITY"
NO_SIGNAL = "NO_SIGNAL"
NO_FEATURES = "NO_FEATURES"
POSITIVE_EDGE = "POSITIVE_EDGE"
NEGATIVE_EDGE = "NEGATIVE_EDGE"
BELOW_TRADE_THRESHOLD = "BELOW_TRADE_THRESHOLD"
HIGH_DISAGREEMENT = "HIGH_DISAGREEMENT"
Z_CLIPPED = "Z_CLIPPED"
SINGLE_NAME_LIMIT = "SINGLE_NAME_LIMIT"
SECTOR_LIMIT = "SECTOR_LIMIT"
LEVERAGE_LIMIT = "LEVERAGE_LIMIT"
CVAR_BREACH = "CVAR_BREACH"
ADV_LIMIT = "ADV_LIMIT"
TAIL_RISK = "TAIL_RISK"
VOL_SCALED = "VOL_SCALED"
DRAWDOWN_SCALED = "DRAWDOWN_SCALED"
REGIME_RISK_OFF = "REGIME_RISK_OFF"
RECOVERY_PHASE = "RECOVERY_PHASE"
TRADING_HALTED = "TRADING_HALTED"
REDUCING_ONLY = "REDUCING_ONLY"
RISK_OVERRIDE = "RISK_OVERRIDE"
POSITION_INCREASE = "POSITION_INCREASE"
POSITION_REDUCTION = "POSITION_REDUCTION"
NO_PRICE = "NO_PRICE"
# --- risk gate and execution (added by the book: risk.py / execution.py) --------------------
CVAR_SCALED = "CVAR_SCALED"  # the tradable names were scaled down to bring CVaR under its limit
LEVERAGE_SCALED = "LEVERAGE_SCALED"  # the tradable names were scaled pro rata to the gross limit
NO_DECISION = "NO_DECISION"  # a held symbol had no pre-risk decision row this session
ORDER_CANCELLED = "ORDER_CANCELLED"  # a paper order found no valid open at its fill session
# --- data faults held at the decision (#16) ---------------------------------------------------
SYSTEMIC_DATA_FAULT = "SYSTEMIC_DATA_FAULT"  # the session is halted: too much of the universe failed quality
UNCONFIRMED_MOVE = "UNCONFIRMED_MOVE"  # an extreme move without a corporate action awaits confirmation

# --- labels (domain/evaluation/labels.py): why a label is NULL (valid = false) ---------------------
# A label row's `reason` lists every code that applies, comma-separated, in this order.
LABEL_CODES: dict[str, str] = {
    "ENTRY_BAR_MISSING": "no bar, or a null open, at the entry session (decision session + 1)",
    "ENTRY_PRICE_INVALID": "the entry session's open is zero, negative or not finite",
    "ENTRY_QUALITY_FAILED": "the entry bar failed data quality (its own row, or a later reversed-spike row naming it, known by the exit session)",
    "EXIT_BAR_MISSING": "no bar, or a null open, at the exit session (entry session + horizon)",
    "EXIT_PRICE_INVALID": "the exit session's open is zero, negative or not finite",
    "EXIT_QUALITY_FAILED": "the exit bar failed data quality (as known at the exit session)",
    "PATH_LEVEL_SHIFT": "a bar strictly between entry and exit failed quality with a level-shift code (UNADJUSTED_SPLIT, RETURN_OUTLIER): the exit/entry ratio spans an unexplained jump",
}
# --- execution algorithms (execution_algos.py) -------------------------------------------------
PARTICIPATION_CAP = "PARTICIPATION_CAP"  # part of an order was over the cap of its slots' expected volume
NO_VOLUME_ESTIMATE = "NO_VOLUME_ESTIMATE"  # no ADV at the decision: the children ran uncapped
NO_INTRADAY_BAR = "NO_INTRADAY_BAR"  # no valid high/low/close on the fill session: a twap/vwap order filled at the open
# --- portfolio construction (domain/optimizer.py, domain/portfolio_methods.py) -------------------
OPTIMIZER_FAILED = "OPTIMIZER_FAILED"  # the session's optimizer did not solve: the current book is held
