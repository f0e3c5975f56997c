from datetime import date

from trading_assets.domain import calendar


def test_sessions_skip_weekends_and_holidays():
    s = calendar.sessions(date(2021, 1, 14), date(2021, 1, 20))
    assert s == [date(2021, 1, 14), date(2021, 1, 15), date(2021, 1, 19), date(2021, 1, 20)]  # MLK day 2021-01-18


def test_five_years_of_sessions_match_xnys():
    assert len(calendar.sessions(date(2021, 1, 1), date(2025, 12, 31))) == 1255
    assert len(calendar.weekday_holidays(date(2021, 1, 1), date(2025, 12, 31))) == 49


def test_navigation():
    assert calendar.previous_session(date(2021, 1, 19)) == date(2021, 1, 15)
    assert calendar.next_session(date(2021, 1, 15)) == date(2021, 1, 19)
    assert calendar.last_session_on_or_before(date(2021, 1, 18)) == date(2021, 1, 15)
    assert calendar.lookback_start(date(2021, 1, 19), 2) == date(2021, 1, 14)
    assert calendar.is_session(date(2021, 1, 19)) and not calendar.is_session(date(2021, 1, 18))


def test_the_holiday_table_is_exchange_calendars_xnys():
    """domain/nyse_holidays.py is generated from exchange-calendars; the sessions it gives are XNYS's."""
    from datetime import timedelta

    from trading_assets.domain import nyse_holidays

    first, last = date.fromisoformat(nyse_holidays.FIRST), date.fromisoformat(nyse_holidays.LAST)
    assert nyse_holidays.HOLIDAYS == calendar.xcals_weekday_holidays(first, last)
    horizon = date.today() + timedelta(days=366)
    assert calendar._all_sessions() == calendar.xcals_sessions(calendar.CALENDAR_START, horizon)
    assert date(2025, 1, 9) not in calendar._all_sessions()  # an ad-hoc closure (national day of mourning)
