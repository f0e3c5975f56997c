"""Yahoo Finance through yfinance 1.7: batched downloads in parallel, rate-limit backoff, typed failures.

What yfinance 1.7 does (read from its source, multi.py / scrapers/history.py / data.py):
- `yf.download` never raises for a ticker: each ticker's exception (DNS failure, timeout, HTTP 429
  as YFRateLimitError) is caught, stored and only LOGGED on the "yfinance" logger; the ticker gets
  an empty frame. When Yahoo cannot be reached at all the result is an EMPTY frame.
- Columns (group_by="ticker") are a MultiIndex (Ticker, Price); all tickers are re-indexed on the
  union of their dates, so a ticker lacking a date gets an all-NaN row there (not a bar).
- With auto_adjust=False, "Close" is split-adjusted by Yahoo (not dividend-adjusted), "Adj Close"
  is split- and dividend-adjusted, "Dividends" are in split-adjusted units and "Stock Splits" holds
  the ratio on the ex-date row.

So this provider:
- downloads batches of `batch_size` symbols on `workers` threads (threads=False inside yfinance, so
  each batch runs on one of our threads and its log records can be told apart by thread id);
- retries a batch whose download raised YFRateLimitError or logged it, sleeping
  backoff_s * 2**attempt (attempt 0, 1, ...; `sleep` is injectable) up to max_retries times, then
  fails it with RATE_LIMITED;
- fails a batch with EMPTY_RESPONSE when nothing came back (the logged cause goes in the message),
  NETWORK_ERROR for a raised OSError, TIMEOUT for a raised timeout, MALFORMED_RESPONSE for a frame
  it cannot read;
- keeps raw Close and Adj Close; actions: split -> value = ratio, price_factor = 1.0 (Close is already
  split-adjusted); dividend d -> price_factor = 1 - d / close_prev (close_prev = the previous
  delivered Close; the download starts `lookback_days` before the window so that the first
  session's previous close is known; null if Yahoo delivered none);
- drops rows with no price and no volume (the re-indexing padding above, and Yahoo's no-trade
  placeholders that yfinance's keepna=False drops too) and lists symbols with no bar in `missing`.
If every batch failed, fetch raises ProviderError with the first batch's reason; otherwise the
symbols of failed batches are listed in `missing` (the router falls back for them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import polars as pl

from trading_assets.providers.base import (
    ACTION_SCHEMA,
    BAR_SCHEMA,
    EMPTY_RESPONSE,
    MALFORMED_RESPONSE,
    NETWORK_ERROR,
    RATE_LIMITED,
    TIMEOUT,
    FetchResult,
    ProviderError,
    check_window,
    empty_actions,
    empty_bars,
    validate_symbols,
)

log = logging.getLogger(__name__)

_RATE_LIMIT_MARKERS = ("YFRateLimitError", "Too Many Requests", "Rate limited")
_PRICE_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Adj Close": "adj_close", "Volume": "volume"}
_REQUIRED = ("Open", "High", "Low", "Close", "Volume")


class _ThreadLogCapture(logging.Handler):
    """Collects the yfinance logger's WARNING+ records emitted by one thread."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.messages.append(record.getMessage())
            except Exception:  # a malformed log call must not break the fetch
                self.messages.append(str(record.msg))


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower()


def _is_rate_limit(exc: BaseException) -> bool:
    return type(exc).__name__ == "YFRateLimitError"


@dataclass
class _Batch:
    symbols: list[str]
    bars: list[pl.DataFrame] = field(default_factory=list)
    actions: list[pl.DataFrame] = field(default_factory=list)
    reason: str | None = None  # failure reason of the whole batch
    message: str = ""


class YFinanceProvider:
    """Yahoo Finance daily bars and actions (name "yfinance")."""

    name = "yfinance"
    is_synthetic = False

    def __init__(
        self,
        batch_size: int = 50,
        workers: int = 4,
        timeout: float = 20,
        max_retries: int = 3,
        session=None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        backoff_s: float = 2.0,
        lookback_days: int = 10,
        download: Callable | None = None,
    ):
        if batch_size < 1 or workers < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("batch_size >= 1, workers >= 1, max_retries >= 0 and timeout > 0 are required")
        self.batch_size = batch_size
        self.workers = workers
        self.timeout = timeout
        self.max_retries = max_retries
        self.session = session
        self.sleep = sleep
        self.backoff_s = backoff_s
        self.lookback_days = lookback_days
        self._download = download

    # --- public ---------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str], start: date, end: date) -> FetchResult:
        syms = validate_symbols(symbols)
        check_window(start, end)
        if not syms:
            return FetchResult(self.name, empty_bars(), empty_actions())
        batches = [syms[i : i + self.batch_size] for i in range(0, len(syms), self.batch_size)]
        if len(batches) == 1:
            results = [self._fetch_batch(batches[0], start, end)]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(batches)), thread_name_prefix="yfinance") as pool:
                results = list(pool.map(lambda b: self._fetch_batch(b, start, end), batches))
        failed = [r for r in results if r.reason is not None]
        for r in failed:
            log.warning("yfinance batch of %d symbols failed: %s: %s", len(r.symbols), r.reason, r.message)
        if len(failed) == len(results):
            first = failed[0]
            raise ProviderError(self.name, first.reason, first.message)
        bar_parts = [b for r in results for b in r.bars]
        bars = pl.concat(bar_parts) if bar_parts else empty_bars()
        act_parts = [a for r in results for a in r.actions]
        actions = pl.concat(act_parts) if act_parts else empty_actions()
        bars = bars.sort(["date", "symbol"], maintain_order=True)
        actions = actions.sort(["date", "symbol", "action"], maintain_order=True)
        served = set(bars["symbol"].unique().to_list())
        if not served:
            raise ProviderError(self.name, EMPTY_RESPONSE, f"no bars for any of {len(syms)} symbols in {start}..{end}")
        return FetchResult(self.name, bars, actions, missing=tuple(s for s in syms if s not in served))

    # --- one batch ------------------------------------------------------------------------------
    def _call_download(self, symbols: list[str], start: date, end: date):
        import yfinance as yf  # imported here: the rest of the package never needs it

        download = self._download or yf.download
        return download(
            symbols,
            start=(start - timedelta(days=self.lookback_days)).isoformat(),
            end=(end + timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
            auto_adjust=False,
            actions=True,
            group_by="ticker",
            threads=False,
            progress=False,
            timeout=self.timeout,
            session=self.session,
        )

    def _fetch_batch(self, symbols: list[str], start: date, end: date) -> _Batch:
        out = _Batch(symbols)
        yf_logger = logging.getLogger("yfinance")
        for attempt in range(self.max_retries + 1):
            capture = _ThreadLogCapture()
            yf_logger.addHandler(capture)
            raised: BaseException | None = None
            frame = None
            try:
                frame = self._call_download(symbols, start, end)
            except Exception as exc:  # classified below
                raised = exc
            finally:
                yf_logger.removeHandler(capture)
            logged = " | ".join(m.strip() for m in capture.messages if m.strip())
            rate_limited = (raised is not None and _is_rate_limit(raised)) or (
                (frame is None or getattr(frame, "empty", True)) and any(k in logged for k in _RATE_LIMIT_MARKERS)
            )
            if rate_limited:
                if attempt < self.max_retries:
                    self.sleep(self.backoff_s * 2**attempt)
                    continue
                out.reason, out.message = RATE_LIMITED, f"rate limited after {attempt + 1} attempts: {logged or raised}"
                return out
            if raised is not None:
                if _is_timeout(raised):
                    out.reason = TIMEOUT
                elif isinstance(raised, OSError):
                    out.reason = NETWORK_ERROR
                else:
                    out.reason = MALFORMED_RESPONSE
                out.message = f"{type(raised).__name__}: {raised}"
                return out
            if frame is None or getattr(frame, "empty", True):
                out.reason = EMPTY_RESPONSE
                out.message = f"yfinance returned an empty frame for {len(symbols)} symbols" + (
                    f"; it logged: {logged[:500]}" if logged else ""
                )
                return out
            try:
                bars, actions = frame_to_bars(frame, symbols, start, end)
            except Exception as exc:
                out.reason, out.message = MALFORMED_RESPONSE, f"cannot read the yfinance frame: {type(exc).__name__}: {exc}"
                return out
            if bars.height == 0:
                out.reason = EMPTY_RESPONSE
                out.message = f"no bars in {start}..{end} for {len(symbols)} symbols" + (f"; it logged: {logged[:500]}" if logged else "")
                return out
            out.bars.append(bars)
            out.actions.append(actions)
            return out
        return out  # unreachable: the loop returns


def frame_to_bars(frame, symbols: Sequence[str], start: date, end: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A yf.download(group_by="ticker", auto_adjust=False, actions=True) frame -> (bars, actions).

    Bars follow BAR_SCHEMA, restricted to [start, end]; rows with no price and no volume are not
    bars (re-indexing padding, no-trade placeholders). A ticker lacking a required price column is left out (reported missing by fetch).
    """
    import pandas as pd

    columns = frame.columns
    if not isinstance(columns, pd.MultiIndex):
        # one ticker without the ticker level: only unambiguous for a one-symbol request
        if len(symbols) != 1:
            raise ValueError("expected (Ticker, Price) MultiIndex columns")
        frame = pd.concat({symbols[0]: frame}, axis=1)
        columns = frame.columns
    tickers = list(dict.fromkeys(columns.get_level_values(0)))
    wanted = set(symbols)
    index = pd.DatetimeIndex(frame.index)
    if index.tz is not None:
        index = index.tz_localize(None)
    days = index.normalize().values.astype("datetime64[D]")
    lo, hi = np.datetime64(start, "D"), np.datetime64(end, "D")
    bar_parts, action_rows = [], []
    for ticker in tickers:
        if ticker not in wanted:
            continue
        sub = frame[ticker]
        if any(c not in sub.columns for c in _REQUIRED):
            log.warning("yfinance: %s lacks column(s) %s; not served", ticker, [c for c in _REQUIRED if c not in sub.columns])
            continue
        values = {name: sub[col].to_numpy(dtype="float64", na_value=np.nan) if col in sub.columns else None for col, name in _PRICE_COLUMNS.items()}
        if values["adj_close"] is None:
            values["adj_close"] = values["close"].copy()
        prices = np.vstack([values[k] for k in ("open", "high", "low", "close", "adj_close")])
        vol = values["volume"]
        # no price and no volume: union-index padding or Yahoo's no-trade placeholder (yfinance drops
        # the same rows itself with keepna=False) - not a bar
        keep = ~(np.all(np.isnan(prices), axis=0) & (np.isnan(vol) | (vol == 0)))
        close = values["close"]
        # previous delivered close for dividend factors (over kept rows only, so padding is skipped)
        kept_idx = np.flatnonzero(keep)
        prev_close = np.full(len(close), np.nan)
        if kept_idx.size > 1:
            prev_close[kept_idx[1:]] = close[kept_idx[:-1]]
        for col, action in (("Dividends", "dividend"), ("Stock Splits", "split")):
            if col not in sub.columns:
                continue
            amounts = sub[col].to_numpy(dtype="float64", na_value=np.nan)
            for i in np.flatnonzero(np.nan_to_num(amounts) > 0):
                if not (lo <= days[i] <= hi):
                    continue
                if action == "split":
                    pf = 1.0
                else:
                    pc = prev_close[i]
                    pf = 1.0 - amounts[i] / pc if np.isfinite(pc) and pc > 0 else None
                action_rows.append((days[i].astype(object), ticker, action, float(amounts[i]), pf))
        in_window = keep & (days >= lo) & (days <= hi)
        if not in_window.any():
            continue
        bar_parts.append(
            pl.DataFrame(
                {
                    "date": days[in_window],
                    "symbol": [ticker] * int(in_window.sum()),
                    **{k: values[k][in_window] for k in ("open", "high", "low", "close", "adj_close", "volume")},
                }
            )
            .cast(BAR_SCHEMA)
            # NaN from pandas means "no value": store it as null, like the other providers
            .with_columns(pl.col(c).fill_nan(None) for c in ("open", "high", "low", "close", "adj_close", "volume"))
        )
    bars = pl.concat(bar_parts) if bar_parts else empty_bars()
    actions = pl.DataFrame(action_rows, schema=ACTION_SCHEMA, orient="row") if action_rows else empty_actions()
    return bars.select(list(BAR_SCHEMA)), actions
