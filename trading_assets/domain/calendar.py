"""NYSE trading sessions (exchange-calendars' XNYS), pure and cached.

A *session* is a trading day of the New York Stock Exchange. Early closes are sessions; weekday
holidays are not. All dates are `datetime.date`.

Sessions = weekdays minus the weekday holidays of `nyse_holidays.HOLIDAYS` (generated from
exchange-calendars' XNYS, checked against it by the tests) up to its LAST date; a calendar needed past
that date comes from exchange-calendars itself, imported only then (it and pandas cost ~0.6 s of a
process start).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import date, timedelta
from functools import lru_cache

from trading_assets.domain import nyse_holidays

CALENDAR_START = date(1990, 1, 2)


@lru_cache(maxsize=1)
def _all_sessions() -> tuple[date, ...]:
    end = date.today() + timedelta(days=366)
    if end > date.fromisoformat(nyse_holidays.LAST):
        return xcals_sessions(CALENDAR_START, end)
    holidays = {date(y, int(md[:2]), int(md[2:])) for y, text in nyse_holidays.HOLIDAYS.items() for md in text.split()}
    first, n = CALENDAR_START.toordinal(), (end - CALENDAR_START).days + 1
    days = (date.fromordinal(first + i) for i in range(n))
    return tuple(d for d in days if d.weekday() < 5 and d not in holidays)


def xcals_sessions(start: date, end: date) -> tuple[date, ...]:
    """The XNYS sessions in [start, end] from exchange-calendars (the reference of the table)."""
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XNYS", start=start.isoformat(), end=end.isoformat())
    return tuple(ts.date() for ts in cal.sessions)


def xcals_weekday_holidays(start: date, end: date) -> dict[int, str]:
    """{year: "MMDD MMDD ..."} of the weekdays in [start, end] that exchange-calendars' XNYS does not
    list as sessions: what domain/nyse_holidays.HOLIDAYS holds (regenerate it from this)."""
    on = set(xcals_sessions(start, end))
    by_year: dict[int, list[str]] = {}
    d = start
    while d <= end:
        if d.weekday() < 5 and d not in on:
            by_year.setdefault(d.year, []).append(d.strftime("%m%d"))
        d += timedelta(days=1)
    return {y: " ".join(v) for y, v in by_year.items()}


def sessions(start: date, end: date) -> list[date]:
    """All sessions d with start <= d <= end."""
    s = _all_sessions()
    return list(s[bisect_left(s, start) : bisect_right(s, end)])


def is_session(d: date) -> bool:
    s = _all_sessions()
    i = bisect_left(s, d)
    return i < len(s) and s[i] == d


def previous_session(d: date) -> date:
    """The last session strictly before d."""
    s = _all_sessions()
    i = bisect_left(s, d)
    if i == 0:
        raise ValueError(f"no session before {d}")
    return s[i - 1]


def next_session(d: date) -> date:
    """The first session strictly after d."""
    s = _all_sessions()
    i = bisect_right(s, d)
    if i >= len(s):
        raise ValueError(f"no session after {d} in the calendar")
    return s[i]


def last_session_on_or_before(d: date) -> date:
    s = _all_sessions()
    i = bisect_right(s, d)
    if i == 0:
        raise ValueError(f"no session on or before {d}")
    return s[i - 1]


def lookback_start(d: date, n_sessions: int) -> date:
    """The session n_sessions sessions before d (d itself counts as 0); clipped at the calendar start."""
    s = _all_sessions()
    i = bisect_right(s, d) - 1
    return s[max(0, i - n_sessions)]


def weekday_holidays(start: date, end: date) -> list[date]:
    """Weekdays in [start, end] that are not sessions (exchange holidays): the partition exclusions."""
    on = set(sessions(start, end))
    out, d = [], start
    while d <= end:
        if d.weekday() < 5 and d not in on:
            out.append(d)
        d += timedelta(days=1)
    return out


def session_index(d: date) -> int:
    """Position of session d in the calendar from CALENDAR_START (= 0); d must be a session."""
    s = _all_sessions()
    i = bisect_left(s, d)
    if i >= len(s) or s[i] != d:
        raise ValueError(f"{d} is not a session")
    return i


def session_at(i: int) -> date:
    """The session of calendar index i (session_index's inverse)."""
    if i < 0:
        raise ValueError(f"no session at index {i}")
    return _all_sessions()[i]


def cadence_index(i: int, every: int, phase: int = 0) -> int:
    """The grid index of session index i: the last index r <= i with r = phase (mod every); the
    calendar's first session (index 0) for the i < phase ahead of the first grid session (1990)."""
    return max(i - (i - phase) % every, 0)


def cadence_session(d: date, every: int, phase: int = 0) -> date:
    """The last session r <= d whose calendar index is `phase` modulo `every`: refit sessions on a
    fixed grid anchored at CALENDAR_START, the same whatever run window d falls in (phase 0: every
    multiple of `every`; a staggered refit gives each symbol its own phase, domain/agents/history.py)."""
    if every < 1:
        raise ValueError(f"a cadence must be >= 1 session, got {every}")
    s = _all_sessions()
    i = bisect_right(s, d) - 1
    if i < 0:
        raise ValueError(f"no session on or before {d}")
    return s[cadence_index(i, every, phase)]


def cadence_sessions(start: date, end: date, every: int, phase: int = 0) -> list[date]:
    """The grid sessions r (index = phase mod `every`) with cadence_session(start) <= r <= end."""
    s = _all_sessions()
    first = session_index(cadence_session(start, every, phase))
    last = bisect_right(s, end) - 1
    nxt = phase % every if first < phase % every else first + every  # index 0 stands in before the first phase
    return [s[first]] + [s[i] for i in range(nxt, last + 1, every)] if first <= last else []
