"""[reference] The universe: symbols, names, GICS sectors and the benchmark (unpartitioned)."""


import dagster as dg
import polars as pl

from trading_assets.defs.resources import PipelineConfig, WarehouseResource
from trading_assets.store.warehouse import Warehouse
from trading_assets.universe import load_universe, validate_symbol


@dg.asset(
    group_name="reference",
    description=(
        "The trading universe, one row per symbol: company name, GICS sector, and the benchmark (SPY) flagged. "
        "Loaded from the universe file (CSV/JSON, TRADING_UNIVERSE or --universe), validated symbol by symbol; "
        "run config `pipeline.symbols` limits a run to some symbols. Table: universe."
    ),
    kinds={"duckdb", "polars"},
)
def universe(context: dg.AssetExecutionContext, warehouse: WarehouseResource, pipeline: PipelineConfig) -> dg.MaterializeResult:
    settings = pipeline.settings()
    frame = load_universe(settings.universe_file, benchmark=settings.benchmark)
    if pipeline.symbols:
        wanted = {validate_symbol(s, "run config pipeline.symbols: ") for s in pipeline.symbols}
        unknown = sorted(wanted - set(frame["symbol"]))
        if unknown:
            raise dg.Failure(f"run config pipeline.symbols names symbols not in the universe: {unknown}")
        frame = frame.filter(pl.col("symbol").is_in(sorted(wanted)) | pl.col("is_benchmark"))
    frame = frame.with_columns(pl.lit(str(settings.universe_file)).alias("source_file"))
    warehouse.get().replace_table("universe", frame)
    by_sector = frame.group_by("sector").len().sort("sector")
    return dg.MaterializeResult(
        metadata={
            "symbols": frame.height,
            "tradable": int((~frame["is_benchmark"]).sum()),
            "benchmark": settings.benchmark,
            "source_file": str(settings.universe_file),
            "by_sector": dg.MetadataValue.md(
                "| sector | symbols |\n|---|---|\n" + "\n".join(f"| {s} | {n} |" for s, n in by_sector.iter_rows())
            ),
        }
    )


def universe_symbols(wh: Warehouse, pipeline: PipelineConfig) -> list[str]:
    """The materialized universe's symbols (benchmark included), limited to the run config's symbols
    (plus the benchmark) when set. Every session asset reads its symbols through this."""
    frame = wh.read("SELECT symbol, is_benchmark FROM universe ORDER BY symbol")
    if frame.height == 0:
        raise dg.Failure("the universe table is empty: materialize the `universe` asset first")
    if pipeline.symbols:
        frame = frame.filter(pl.col("symbol").is_in(list(pipeline.symbols)) | pl.col("is_benchmark"))
    return frame["symbol"].to_list()


def benchmark_symbols(wh: Warehouse, default: str) -> list[str]:
    """The universe's benchmark symbols (universe.is_benchmark); the settings' benchmark if none is marked."""
    marked = wh.read("SELECT symbol FROM universe WHERE is_benchmark ORDER BY symbol")["symbol"].to_list()
    return marked or [default]
