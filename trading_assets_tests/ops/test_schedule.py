"""The daily schedule, the freshness deadline and the freshness check, with Dagster's schedule testing
APIs (build_schedule_context + evaluate_tick) against the real Definitions, and exchange-calendars'
XNYS as the reference for which days are sessions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import exchange_calendars as xcals
import pytest
from dagster._utils.schedules import cron_string_iterator

from trading_assets.defs import automation
from trading_assets.defs.automation import daily_close, expected_session, price_history_freshness_deadline

NY = ZoneInfo("America/New_York")
DEADLINE = time(19, 30)


@pytest.fixture(scope="module")
def repo():
    from trading_assets.definitions import defs

    return defs.get_repository_def()


def tick(context_repo, day: date, hh: int = 18, mm: int = 0):
    ctx = dg.build_schedule_context(scheduled_execution_time=datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY), repository_def=context_repo)
    return daily_close.evaluate_tick(ctx)


def test_schedule_definition_is_after_the_close_on_weekdays_in_new_york():
    assert daily_close.cron_schedule == "0 18 * * 1-5"
    assert daily_close.execution_timezone == "America/New_York"
    assert daily_close.job_name == "trading_cycle"
    assert daily_close.default_status == dg.DefaultScheduleStatus.STOPPED


def test_a_session_tick_requests_one_run_of_that_session(repo):
    data = tick(repo, date(2025, 7, 3))  # the Thursday before Independence Day (an early close is still a session)
    assert data.skip_message is None
    [req] = data.run_requests
    assert req.run_key == "2025-07-03"
    assert req.partition_key == "2025-07-03"
    assert req.tags["trading/source"] == "schedule"


@pytest.mark.parametrize(
    "holiday",
    [
        date(2025, 1, 1),  # New Year's Day
        date(2025, 1, 9),  # national day of mourning (President Carter): an unscheduled closure
        date(2025, 4, 18),  # Good Friday: an exchange holiday that is no federal holiday
        date(2025, 6, 19),  # Juneteenth
        date(2025, 7, 4),
        date(2025, 11, 27),  # Thanksgiving
        date(2025, 12, 25),
    ],
)
def test_exchange_holidays_are_skipped_with_a_reason(repo, holiday):
    data = tick(repo, holiday)
    assert data.run_requests == []
    assert str(holiday) in data.skip_message and "not an NYSE session" in data.skip_message


def test_a_year_of_ticks_runs_exactly_the_xnys_sessions_once_each(repo):
    """Every tick of 2025 (the cron's own iterator) -> run keys == XNYS sessions of 2025, no duplicates."""
    start = datetime(2025, 1, 1, tzinfo=NY)
    keys: list[str] = []
    skipped = 0
    # the daemon's own tick iterator for this cron and timezone
    for t in cron_string_iterator(start.timestamp(), daily_close.cron_schedule, daily_close.execution_timezone):
        if t.year > 2025:
            break
        assert (t.hour, t.minute, t.weekday() < 5) == (18, 0, True)
        data = daily_close.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=t, repository_def=repo))
        keys += [r.run_key for r in data.run_requests]
        skipped += data.skip_message is not None
    xnys = [d.date().isoformat() for d in xcals.get_calendar("XNYS").sessions_in_range("2025-01-01", "2025-12-31")]
    assert keys == xnys
    assert len(keys) == len(set(keys)) == 250
    assert skipped == 261 - 250  # the weekday holidays of 2025


def test_run_requests_name_existing_partitions_of_the_job(repo):
    job = repo.get_job("trading_cycle")
    keys = set(job.partitions_def.get_partition_keys())
    for d in (date(2025, 3, 3), date(2025, 11, 28), date(2025, 12, 24)):  # plain day, two early closes
        [req] = tick(repo, d).run_requests
        assert req.partition_key in keys


def test_the_job_runs_in_process_and_covers_the_graph(repo):
    job = repo.get_job("trading_cycle")
    assert job.executor_def is dg.in_process_executor
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"universe", "price_history", "data_quality", "features", "agent_outputs", "risk_decisions", "cycle_summary"} <= keys
    nodes = set(job.graph.node_dict)
    assert "price_history_price_history_not_empty" in nodes  # the stage checks run with the job ...
    assert not any(n.endswith(automation.PRICE_HISTORY_FRESH) for n in nodes)  # ... the wall-clock freshness check does not
    assert set(repo.get_job(automation.FRESHNESS_JOB_NAME).graph.node_dict) == {f"price_history_{automation.PRICE_HISTORY_FRESH}"}


# --- freshness -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("now", "due"),
    [
        (datetime(2025, 7, 3, 19, 30, tzinfo=NY), date(2025, 7, 3)),  # session day, at the deadline
        (datetime(2025, 7, 3, 19, 29, tzinfo=NY), date(2025, 7, 2)),  # one minute before: still yesterday
        (datetime(2025, 7, 4, 21, 0, tzinfo=NY), date(2025, 7, 3)),  # Independence Day: the day before
        (datetime(2025, 7, 5, 12, 0, tzinfo=NY), date(2025, 7, 3)),  # Saturday
        (datetime(2025, 7, 7, 9, 0, tzinfo=NY), date(2025, 7, 3)),  # Monday morning
        (datetime(2025, 4, 18, 23, 0, tzinfo=NY), date(2025, 4, 17)),  # Good Friday evening
        (datetime(2025, 7, 8, 0, 10, tzinfo=ZoneInfo("UTC")), date(2025, 7, 7)),  # Tuesday in UTC, 20:10 Monday in NY
        (datetime(2025, 7, 7, 23, 20, tzinfo=ZoneInfo("UTC")), date(2025, 7, 3)),  # 19:20 NY Monday (EDT): before the deadline
        (datetime(2025, 1, 7, 0, 20, tzinfo=ZoneInfo("UTC")), date(2025, 1, 3)),  # 19:20 NY Monday (EST, UTC-5)
    ],
)
def test_expected_session(now, due):
    assert expected_session(now, DEADLINE, "America/New_York") == due


def test_freshness_schedule_repeats_no_session_on_holidays(repo):
    def key(d: date) -> str:
        ctx = dg.build_schedule_context(scheduled_execution_time=datetime(d.year, d.month, d.day, 19, 30, tzinfo=NY), repository_def=repo)
        [req] = price_history_freshness_deadline.evaluate_tick(ctx).run_requests
        return req.run_key

    assert key(date(2025, 7, 3)) == "freshness-2025-07-03"
    # On the holiday the due session is still 3 July: the same run key, so Dagster launches nothing new.
    assert key(date(2025, 7, 4)) == key(date(2025, 7, 3))
    assert key(date(2025, 7, 7)) == "freshness-2025-07-07"


def _freshness_result(instance, repo):
    result = repo.get_job(automation.FRESHNESS_JOB_NAME).execute_in_process(instance=instance)
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == automation.PRICE_HISTORY_FRESH
    return evaluation


def test_freshness_check_fails_until_the_due_session_is_recorded(repo, tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        due = expected_session(datetime.now(NY), DEADLINE, "America/New_York")
        # an older session being in does not make the check pass
        instance.report_runless_asset_event(dg.AssetMaterialization("price_history", partition=(due - timedelta(days=7)).isoformat()))
        missing = _freshness_result(instance, repo)
        assert not missing.passed
        assert missing.metadata["due_session"].value == due.isoformat()
        assert missing.severity == dg.AssetCheckSeverity.ERROR

        instance.report_runless_asset_event(dg.AssetMaterialization("price_history", partition=due.isoformat()))
        fresh = _freshness_result(instance, repo)
        assert fresh.passed
        assert fresh.metadata["due_session"].value == due.isoformat()
