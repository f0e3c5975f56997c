"""Dagster resources: the warehouse (DuckDB through SQL, no IO manager) and the run's pipeline config."""


import dataclasses
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from trading_assets.settings import Settings, load_settings
from trading_assets.store.warehouse import Warehouse, share_database, unshare_database


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file and its audit mirror. Empty = resolved at run time from the environment
    (TRADING_DB_PATH / TRADING_AUDIT_DIR / TRADING_DATA_DIR), so a code location loaded once
    follows the environment each run is started with."""

    db_path: str = ""
    audit_dir: str = ""
    run_lock_timeout_s: float = float(os.environ.get("TRADING_RUN_LOCK_TIMEOUT", "3600"))

    _lock_handle = PrivateAttr(default=None)
    _shared_path = PrivateAttr(default=None)

    # One writing RUN at a time, whoever started it. The run queue (dagster.yaml) serializes runs
    # the daemon launches, but `trading-cycle` and tests execute in process, past the queue; and
    # DuckDB's own lock only keeps single connections apart, so two runs could interleave sessions
    # of the path-dependent book. An exclusive flock next to the DuckDB file, held from the first
    # step of a run to its last, makes a second run wait (it logs who holds it), then proceed.
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.dagster_run is None:  # sensors and schedules only read
            return
        db_path, _ = self._paths()
        lock_path = db_path.with_name(db_path.name + ".runlock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")
        deadline = time.monotonic() + self.run_lock_timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    context.log.info(f"waiting for the run that holds the warehouse ({holder}) to finish")
                    announced = True
                if time.monotonic() > deadline:
                    handle.close()
                    raise dg.Failure(
                        f"another run has held the warehouse {db_path} for over {self.run_lock_timeout_s:.0f} s; "
                        f"giving up (TRADING_RUN_LOCK_TIMEOUT)"
                    )
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"run_id": context.dagster_run.run_id, "pid": os.getpid()}))
        handle.flush()
        self._lock_handle = handle
        # The run's steps share one open DuckDB database (store/warehouse.py: a daily cycle opened
        # the file ~160 times, ~20 ms each); it is closed whenever idle, so readers still get in.
        share_database(db_path)
        self._shared_path = db_path

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._shared_path is not None:
            unshare_database(self._shared_path)  # before the run lock is released: the checkpoint is the run's
            self._shared_path = None
        handle = self._lock_handle
        if handle is not None:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            self._lock_handle = None

    def _paths(self) -> tuple[Path, Path]:
        settings = load_settings() if not (self.db_path and self.audit_dir) else None
        db_path = Path(self.db_path) if self.db_path else settings.db_path
        audit_dir = Path(self.audit_dir) if self.audit_dir else settings.audit_dir
        return db_path, audit_dir

    def get(self) -> Warehouse:
        db_path, audit_dir = self._paths()
        wh = Warehouse(db_path, audit_dir)
        wh.ensure_schema()
        return wh


class PipelineConfig(dg.ConfigurableResource):
    """What a run trades on: ONE Settings object for every asset of the run (`settings()`).

    The base is the environment read once at the edge (`load_settings()` when the run's resources
    start: the CLI's process, or the code location's process for runs launched from the UI and
    schedules); run config overrides it:
    settings_overrides: any Settings fields, nested by section, as JSON-like values, e.g.
        {"history_start": "2021-01-04", "execution": {"mode": "live"}}. `trading-cycle` passes the
        WHOLE Settings it built from its flags here (Settings.to_dict()), so the run uses exactly it.
    symbols: limit the run to these symbols (empty = the whole universe).
    universe_file, providers, local_data_dir, seed, workers, mode: launchpad shortcuts for the
        fields of the same names (mode = execution.mode); empty / -1 / 0 = not overridden.
    Every asset sees the same object, so the settings hash (and the cycle_id) is the same in
    decisions, risk_decisions, orders and cycle_meta.
    """

    # Any, not dict: Dagster's map config type refuses null members, and None is a real value (local_data_dir)
    settings_overrides: Any = None
    universe_file: str = ""
    symbols: list[str] = []
    providers: list[str] = []
    local_data_dir: str = ""
    seed: int = -1
    workers: int = 0
    mode: str = ""
    dry_run: bool = False  # the book prints and audits the orders it would send, sends nothing (not a Settings field:
    #                        a dry run must make the same orders, same ids, as the run it rehearses)

    _settings = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = self._build()  # once per run: every step of the run gets this object

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = self._build()
        return self._settings

    def _build(self) -> Settings:
        s = load_settings()
        if self.settings_overrides:
            s = s.with_overrides(self.settings_overrides)
        changes: dict = {}
        if self.universe_file:
            changes["universe_file"] = Path(self.universe_file).resolve()
        if self.providers:
            changes["providers"] = tuple(self.providers)
        if self.local_data_dir:
            paths = tuple(Path(p).resolve() for p in self.local_data_dir.split(os.pathsep) if p.strip())
            changes["local_data_dir"], changes["local_data_extra"] = paths[0], paths[1:]
        if self.seed >= 0:
            changes["seed"] = self.seed
        if self.workers > 0:
            changes["workers"] = self.workers
        if self.mode:
            changes["execution"] = dataclasses.replace(s.execution, mode=self.mode)
        return s.replace(**changes) if changes else s


def default_resources(settings: Settings | None = None) -> dict:
    """The resources of the Definitions; with `settings`, the warehouse is pinned to its paths."""
    if settings is None:
        return {"warehouse": WarehouseResource(), "pipeline": PipelineConfig()}
    return {
        "warehouse": WarehouseResource(db_path=str(settings.db_path), audit_dir=str(settings.audit_dir)),
        "pipeline": PipelineConfig(),
    }
