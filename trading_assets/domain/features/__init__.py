"""The feature library: pure polars expression builders by group, the named catalog (the single
source of truth) and `compute_features`, the entry point the `features` asset calls."""

from trading_assets.domain.features.catalog import (
    CATALOG,
    FEATURE_NAMES,
    FeatureSpec,
    feature_version,
    format_catalog,
    render_markdown,
)
from trading_assets.domain.features.compute import compute_features, output_schema

__all__ = [
    "CATALOG",
    "FEATURE_NAMES",
    "FeatureSpec",
    "compute_features",
    "feature_version",
    "format_catalog",
    "output_schema",
    "render_markdown",
]
