"""`python -m trading_assets.domain.features > docs/FEATURES.md` regenerates the catalog's docs page."""

from trading_assets.domain.features.catalog import render_markdown

print(render_markdown(), end="")
