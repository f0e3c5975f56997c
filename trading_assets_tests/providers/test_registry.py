"""Provider names -> instances from settings."""

from __future__ import annotations

from datetime import date

import pytest

from trading_assets.providers.base import NOT_CONFIGURED, Provider, ProviderError
from trading_assets.providers.local_files import LocalFilesProvider
from trading_assets.providers.registry import PROVIDER_NAMES, build_providers
from trading_assets.providers.synthetic import SyntheticProvider
from trading_assets.providers.yfinance_provider import YFinanceProvider
from trading_assets.settings import load_settings


@pytest.fixture
def settings(data_dir, tmp_path):
    return load_settings().replace(seed=11, workers=3, local_data_dir=tmp_path)


def test_names_map_to_instances_in_order(settings, tmp_path):
    providers = build_providers(["yfinance", "local", "synthetic"], settings)
    assert [type(p) for p in providers] == [YFinanceProvider, LocalFilesProvider, SyntheticProvider]
    assert all(isinstance(p, Provider) for p in providers)
    yf, local, syn = providers
    assert yf.workers == 3 and local.data_dir == tmp_path and syn.seed == 11
    assert syn.sector_of("AAPL") == "Information Technology" and syn.sector_of("SPY") == "Benchmark"
    assert [p.name for p in providers] == ["yfinance", "local", "synthetic"]
    assert build_providers("synthetic, local", settings)[1].name == "local"


def test_unknown_and_repeated_names(settings):
    with pytest.raises(ValueError, match="unknown provider.*'bloomberg'.*valid names: synthetic, local, yfinance"):
        build_providers(["synthetic", "bloomberg"], settings)
    with pytest.raises(ValueError, match="more than once: local"):
        build_providers(["local", "local"], settings)
    with pytest.raises(ValueError, match="no providers configured"):
        build_providers([], settings)
    assert PROVIDER_NAMES == ("synthetic", "local", "yfinance")


def test_local_without_a_folder_fails_on_fetch_not_on_build(settings):
    (local,) = build_providers(["local"], settings.replace(local_data_dir=None))
    with pytest.raises(ProviderError) as e:
        local.fetch(["AAPL"], date(2024, 1, 2), date(2024, 1, 3))
    assert e.value.reason == NOT_CONFIGURED
