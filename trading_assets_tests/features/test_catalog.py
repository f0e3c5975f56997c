"""The catalog: mandatory names, coverage of every group, stage ordering, docs, version hash."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import polars as pl

from trading_assets.domain.features import CATALOG, FEATURE_NAMES, feature_version, format_catalog, render_markdown
from trading_assets.domain.features import benchmark, cross_section, liquidity, momentum, oscillators, returns, trend, volatility
from trading_assets.domain.features.catalog import BY_NAME, GROUPS, UNITS, sql_columns
from trading_assets.settings import FeatureSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "FEATURES.md"

MANDATORY = """
logret_1 logret_5 logret_10 logret_20 logret_60 logret_120 logret_252
vol_20 vol_60 ewma_vol_20 ewma_vol_60 atr_14 atr_20
sma_20 sma_50 sma_200 ema_5 ema_20 ema_50 ema_200 ema_slope_5 ema_slope_20 ema_slope_50 ema_slope_200
px_sma_50 px_sma_200 golden_cross death_cross sma_50_above_200
mom_1m mom_3m mom_6m mom_12m mom_12_1 roc_5 roc_10 roc_20 roc_60 mom_accel
rsi_7 rsi_14 rsi_21 zscore_20 zscore_60 zscore_120 bb_pctb_20 stoch_k_14 stoch_d_14 breakout_20
adv_shares_1d adv_shares_5d adv_shares_21d adv_shares_63d adv_dollar_1d adv_dollar_5d adv_dollar_21d adv_dollar_63d volume_ratio_20
sharpe_proxy_60 calmar_proxy_252 vol_rank_20 rank_mom_12_1 rank_rsi_14
beta_60 beta_252 corr_60 corr_252 alpha_60 alpha_252 r2_60 r2_252 te_60 te_252
close_adj
""".split()


def test_at_least_100_features_with_the_mandatory_names():
    assert len(CATALOG) >= 100
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    missing = [n for n in MANDATORY if n not in BY_NAME]
    assert not missing, missing


def test_names_groups_units_and_entries_are_well_formed():
    for f in CATALOG:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", f.name), f.name
        assert f.group in GROUPS and f.unit in UNITS, f.name
        assert f.formula and f.window >= 1 and 0 <= f.warmup <= f.window, f.name
        assert f.inputs, f.name
    assert {f.group for f in CATALOG} == set(GROUPS)
    # the TA-Lib mapping exists for the features the issue names
    for n in ("rsi_14", "atr_14", "ema_20", "sma_50", "roc_10", "bb_pctb_20", "stoch_k_14", "stoch_d_14"):
        assert BY_NAME[n].talib, n
    assert set(sql_columns().values()) == {"DOUBLE"} and list(sql_columns()) == list(FEATURE_NAMES)


def test_a_feature_only_reads_features_of_earlier_stages():
    for f in CATALOG:
        for inp in f.inputs:
            if inp in BY_NAME:
                assert BY_NAME[inp].stage < f.stage, f"{f.name} (stage {f.stage}) reads {inp} (stage {BY_NAME[inp].stage})"
            else:
                assert inp in {"open", "high", "low", "close", "volume", "benchmark close"}, f"{f.name}: unknown input {inp}"


def test_every_builder_states_its_formula():
    for module in (returns, volatility, trend, momentum, oscillators, liquidity, cross_section, benchmark):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not name.startswith("_"):
                assert fn.__doc__ and len(fn.__doc__) > 20, f"{module.__name__}.{name} has no formula docstring"


def test_every_entry_builds_an_expression():
    for f in CATALOG:
        assert isinstance(f.build(FeatureSettings()), pl.Expr), f.name


def test_version_hash_covers_catalog_and_settings():
    s = FeatureSettings()
    v = feature_version(s)
    assert re.fullmatch(r"[0-9a-f]{16}", v) and feature_version(FeatureSettings()) == v
    assert feature_version(dataclasses.replace(s, annualization=260)) != v
    assert feature_version(dataclasses.replace(s, ewma_lambda_fast=0.95)) != v


def test_format_catalog_lists_every_feature():
    text = format_catalog()
    lines = text.splitlines()
    assert lines[0].split() == ["name", "group", "formula"]
    for f in CATALOG:
        assert any(line.startswith(f.name + " ") and f.group in line and f.formula in line for line in lines), f.name
    assert lines[-1] == f"{len(CATALOG)} features in {len(GROUPS)} groups"


def test_committed_docs_are_generated_from_the_catalog():
    assert DOCS.exists(), "docs/FEATURES.md is missing: python -m trading_assets.domain.features > docs/FEATURES.md"
    assert DOCS.read_text() == render_markdown(), "docs/FEATURES.md is stale: python -m trading_assets.domain.features > docs/FEATURES.md"
