"""Dagster resources: the warehouse (DuckDB through SQL, no IO manager) and the run's pipeline config."""


from pathlib import Path

import dagster as dg

from trading_assets.settings import Settings, load_settings
from trading_assets.store.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file and its audit mirror. Empty = resolved at run time from the environment
    (TRADING_DB_PATH / TRADING_AUDIT_DIR / TRADING_DATA_DIR), so a code location loaded once
    follows the environment each run is started with."""

    db_path: str = ""
    audit_dir: str = ""

    def get(self) -> Warehouse:
        settings = load_settings() if not (self.db_path and self.audit_dir) else None
        db_path = Path(self.db_path) if self.db_path else settings.db_path
        audit_dir = Path(self.audit_dir) if self.audit_dir else settings.audit_dir
        wh = Warehouse(db_path, audit_dir)
        wh.ensure_schema()
        return wh


class PipelineConfig(dg.ConfigurableResource):
    """What a run trades on. Every field overrides the environment's settings for this run.

    symbols: limit the run to these symbols (empty = the whole universe).
    providers: router order, e.g. ["yfinance", "local"]; empty = settings (TRADING_PROVIDERS).
    """

    universe_file: str = ""
    symbols: list[str] = []
    providers: list[str] = []
    local_data_dir: str = ""
    seed: int = -1
    workers: int = 0
    mode: str = "paper"

    def settings(self) -> Settings:
        s = load_settings()
        changes: dict = {}
        if self.universe_file:
            changes["universe_file"] = Path(self.universe_file).resolve()
        if self.providers:
            changes["providers"] = tuple(self.providers)
        if self.local_data_dir:
            changes["local_data_dir"] = Path(self.local_data_dir).resolve()
        if self.seed >= 0:
            changes["seed"] = self.seed
        if self.workers > 0:
            changes["workers"] = self.workers
        return s.replace(**changes) if changes else s


def default_resources(settings: Settings | None = None) -> dict:
    """The resources of the Definitions; with `settings`, the warehouse is pinned to its paths."""
    if settings is None:
        return {"warehouse": WarehouseResource(), "pipeline": PipelineConfig()}
    return {
        "warehouse": WarehouseResource(db_path=str(settings.db_path), audit_dir=str(settings.audit_dir)),
        "pipeline": PipelineConfig(),
    }
