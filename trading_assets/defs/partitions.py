"""The partitions of every session-grained asset: one partition per NYSE session.

A weekday cron with the exchange's weekday holidays as exclusions makes every partition key a real
session (DESIGN section 3: by date, with symbol as a key column; a date x symbol grid costs hours of
Dagster bookkeeping per backfill). `end_offset=1` makes today's session a partition during the
day, so the 18:00 New York schedule can materialize the session that just closed.
"""


from collections.abc import Sequence
from datetime import date, datetime, timedelta

import dagster as dg

from trading_assets.domain import calendar
from trading_assets.settings import Settings, load_settings

PARTITION_FMT = "%Y-%m-%d"
TIMEZONE = "America/New_York"


def sessions_partitions_def(settings: Settings | None = None) -> dg.TimeWindowPartitionsDefinition:
    settings = settings or load_settings()
    first = calendar.sessions(settings.history_start, settings.history_start + timedelta(days=14))[0]
    holidays = calendar.weekday_holidays(first, date.today() + timedelta(days=365))
    return dg.TimeWindowPartitionsDefinition(
        start=datetime(first.year, first.month, first.day),
        fmt=PARTITION_FMT,
        cron_schedule="0 0 * * 1-5",
        timezone=TIMEZONE,
        end_offset=1,
        exclusions=[datetime(h.year, h.month, h.day) for h in holidays],
    )


SESSIONS = sessions_partitions_def()

# Single-run backfills: a 5-year backfill from the UI is ONE run over the whole range.
SINGLE_RUN = dg.BackfillPolicy.single_run()

# Dependency mappings
SAME_SESSION = dg.TimeWindowPartitionMapping()
PREVIOUS_SESSION = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)


def lookback(n_sessions: int) -> dg.TimeWindowPartitionMapping:
    """This session and the n_sessions before it (clipped at the first partition)."""
    return dg.TimeWindowPartitionMapping(start_offset=-n_sessions, end_offset=0, allow_nonexistent_upstream_partitions=True)


def window_of(context: dg.AssetExecutionContext) -> tuple[date, date, list[date]]:
    """The run's session window: (first session, last session, every session in it, in order)."""
    keys = context.partition_keys
    days = sorted(date.fromisoformat(k) for k in keys)
    return days[0], days[-1], days


def run_window(context) -> tuple[date, date]:
    """The session window of the run an asset check belongs to, from the run's tags.

    A check in a single-run range backfill is recorded without a partition (DESIGN section 9), so
    checks read the run's range and report per-session and per-symbol detail in their metadata.
    """
    tags = context.run.tags
    if "dagster/asset_partition_range_start" in tags:
        return (
            date.fromisoformat(tags["dagster/asset_partition_range_start"]),
            date.fromisoformat(tags["dagster/asset_partition_range_end"]),
        )
    key = tags.get("dagster/partition")
    if key:
        d = date.fromisoformat(key)
        return d, d
    raise dg.Failure("this check runs only inside a partitioned run (no partition or range in the run tags)")


def sessions_without_rows(dates, start: date, end: date) -> list[str]:
    """The sessions in [start, end] absent from `dates` (an iterable of dates), as ISO strings:
    what a blocking "every session has rows" check reports."""
    seen = set(dates)
    return [d.isoformat() for d in calendar.sessions(start, end) if d not in seen]


# (session, symbol) rows per block: the agents' working set and the ~6x as many output rows of one
# block are what stays in memory (a block of 250k rows is ~125 sessions of 2,000 symbols)
ROWS_PER_BLOCK = 250_000


def session_blocks(sessions: Sequence[date], n_symbols: int, rows: int | None = None) -> list[tuple[date, date]]:
    """The sessions (sorted) cut into consecutive blocks of k = max(1, rows // n_symbols) sessions
    (rows: ROWS_PER_BLOCK by default), each as the date range (its first session, the day before the
    next block's first session; the last block ends on the last session): the ranges tile the window
    day by day, so reading or replacing them one by one touches exactly the rows of the window."""
    days = sorted(sessions)
    k = max(1, (rows or ROWS_PER_BLOCK) // max(1, n_symbols))
    firsts = days[::k]
    return [(lo, nxt - timedelta(days=1)) for lo, nxt in zip(firsts, firsts[1:])] + ([(firsts[-1], days[-1])] if days else [])
