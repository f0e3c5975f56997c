"""Provider names -> provider instances, from settings.

"synthetic" -> SyntheticProvider(settings.seed, the settings' universe: sectors and benchmark; paths kept in
               data_dir/cache/synthetic)
"local"     -> LocalFilesProvider(settings.local_data_dir + local_data_extra)   (unset folder: fails NOT_CONFIGURED on fetch)
"yfinance"  -> YFinanceProvider(workers=settings.workers)
The router only ever uses what this returns, so a synthetic provider is in play only when named.
"""

from __future__ import annotations

from collections.abc import Sequence

from trading_assets.providers.base import Provider
from trading_assets.settings import Settings

PROVIDER_NAMES = ("synthetic", "local", "yfinance")


def build_providers(names: Sequence[str], settings: Settings) -> list[Provider]:
    """One provider per name, in the given order; ValueError for unknown or repeated names."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no providers configured; valid names: {', '.join(PROVIDER_NAMES)}")
    unknown = [n for n in names if n not in PROVIDER_NAMES]
    if unknown:
        raise ValueError(f"unknown provider(s) {', '.join(map(repr, unknown))}; valid names: {', '.join(PROVIDER_NAMES)}")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"provider(s) named more than once: {', '.join(repeated)}")
    out: list[Provider] = []
    for name in names:
        if name == "synthetic":
            from trading_assets.providers.synthetic import SyntheticProvider
            from trading_assets.universe import load_universe

            universe = load_universe(settings.universe_file, settings.benchmark)
            # generated paths kept under the data folder: the next run slices them (SyntheticProvider)
            out.append(SyntheticProvider(settings.seed, universe, benchmarks=(settings.benchmark,),
                                         cache_dir=settings.data_dir / "cache" / "synthetic"))
        elif name == "local":
            from trading_assets.providers.local_files import LocalFilesProvider

            out.append(LocalFilesProvider([settings.local_data_dir, *settings.local_data_extra]
                                          if settings.local_data_dir else None))
        else:
            from trading_assets.providers.yfinance_provider import YFinanceProvider

            out.append(YFinanceProvider(workers=max(1, settings.workers)))
    return out
