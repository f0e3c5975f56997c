"""Fixtures of the provider tests: an offline fake Yahoo session and an isolated yfinance cache.

The fake session subclasses requests.Session (yfinance 1.7 accepts only curl_cffi or requests
sessions, data.py `_set_session`) and answers the three URLs yfinance calls for a daily download
(fc.yahoo.com cookie, v1/test/getcrumb, v8/finance/chart/<SYMBOL>) from the recorded Yahoo v8
chart responses in ../shared/data/yahoo_v8_chart. Nothing here opens a socket.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from trading_assets_tests.conftest import SHARED_DATA

CHART_DIR = SHARED_DATA / "yahoo_v8_chart"


class FakeResponse:
    def __init__(self, status: int, text: str, url: str):
        self.status_code = status
        self.text = text
        self.content = text.encode()
        self.url = url
        self.headers: dict = {}
        self.cookies: dict = {}

    def json(self):
        return json.loads(self.text)

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code}")


class FakeYahooSession(requests.Session):
    """Serves recorded chart JSON per symbol; `fail` makes every request raise that exception;
    `status_429_first` answers the first n chart requests with HTTP 429."""

    def __init__(self, files: dict[str, str] | None = None, fail: BaseException | None = None, status_429_first: int = 0):
        super().__init__()
        self.files = files or {}
        self.fail = fail
        self.status_429_left = status_429_first
        self.chart_calls: list[tuple[str, dict]] = []

    def get(self, url, params=None, timeout=None, **kwargs):  # noqa: D401 - the only verb yfinance uses here
        if self.fail is not None:
            raise self.fail
        if "fc.yahoo.com" in url:
            return FakeResponse(200, "", url)
        if "getcrumb" in url:
            return FakeResponse(200, "fake-crumb", url)
        if "/v8/finance/chart/" in url:
            self.chart_calls.append((url, dict(params or {})))
            if self.status_429_left > 0:
                self.status_429_left -= 1
                return FakeResponse(429, "Too Many Requests", url)
            symbol = url.rsplit("/", 1)[1]
            name = self.files.get(symbol, "scheb_noData.json")
            return FakeResponse(200, (CHART_DIR / name).read_text(), url)
        return FakeResponse(404, "not found", url)

    def post(self, url, *args, **kwargs):
        return self.get(url)

    def request(self, method, url, *args, **kwargs):  # anything else would be a network call
        raise AssertionError(f"unexpected {method} {url} in an offline test")


@pytest.fixture(scope="session")
def _yf_cache_dir(tmp_path_factory):
    """yfinance's sqlite caches (timezone, cookie) in a temporary folder, set once: its cache objects
    keep their first database, so the location must be chosen before the first use."""
    import yfinance as yf

    d = tmp_path_factory.mktemp("yf-cache")
    yf.set_tz_cache_location(str(d))
    return d


@pytest.fixture
def yf_offline(_yf_cache_dir):
    """yfinance with its caches in a temporary folder and its response memo cleared between tests."""
    if not CHART_DIR.exists():
        pytest.skip(f"recorded Yahoo responses {CHART_DIR} are absent")
    import yfinance as yf
    from yfinance.data import YfData

    YfData.cache_get.cache_clear()
    yield yf
    YfData.cache_get.cache_clear()


@pytest.fixture
def chart_dir() -> Path:
    if not CHART_DIR.exists():
        pytest.skip(f"recorded Yahoo responses {CHART_DIR} are absent")
    return CHART_DIR
