"""MLflow tracking and model registry on a local SQLite store, no server, no network.

    tracking + registry URI   sqlite:///<data folder>/mlflow/mlflow.db
    artifacts                 <data folder>/mlflow/artifacts (experiment "trading-assets-models")

Every training (model_training) is one MLflow run: params (the variant's hyperparameters, window,
purge, feature_version, training session), metrics (in-sample and validation rank IC, rows, sessions,
fit seconds), tags (family, agent, model_version) and the model file as an artifact; each run is
registered as a version of the registered model named after the family (tag agent = the variant).
Aliases `champion` and `challenger` per family are set by agent_outputs after its promotions.

MLflow never reaches the network: telemetry is off (MLFLOW_DISABLE_TELEMETRY, DO_NOT_TRACK) before
mlflow is imported, and both URIs are local SQLite files.
"""

from __future__ import annotations

import os
from pathlib import Path

EXPERIMENT = "trading-assets-models"


def _quiet_mlflow():
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    os.environ.setdefault("MLFLOW_TRACKING_INSECURE_TLS", "false")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow  # noqa: F401
    from mlflow import MlflowClient

    return MlflowClient


class MlflowRegistry:
    def __init__(self, data_folder: Path):
        self.root = Path(data_folder) / "mlflow"
        self.root.mkdir(parents=True, exist_ok=True)
        self.uri = f"sqlite:///{self.root / 'mlflow.db'}"
        client_cls = _quiet_mlflow()
        self.client = client_cls(tracking_uri=self.uri, registry_uri=self.uri)
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        self.experiment_id = (
            exp.experiment_id if exp else self.client.create_experiment(EXPERIMENT, artifact_location=(self.root / "artifacts").as_uri())
        )
        self._registered: set[str] = set()

    def _ensure_registered(self, family: str) -> None:
        if family in self._registered:
            return
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(family)
        except MlflowException:
            self.client.create_registered_model(family, description=f"trained agent family {family} (trading_assets.domain.agents)")
        self._registered.add(family)

    def log_training(self, result, artifact_rel: str, feature_version: str, val: tuple, models) -> str:
        """One run + one registered version for a TRAINED result; returns the MLflow run id."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{result.agent}@{result.date}",
            tags={"family": result.family, "agent": result.agent, "model_version": result.version, "training_session": str(result.date)},
        )
        rid = run.info.run_id
        params = {
            "agent": result.agent, "family": result.family, "training_session": str(result.date), "model_version": result.version,
            "variant_params": result.params, "window_years": result.window_years, "first_label_date": str(result.first_label_date),
            "last_label_date": str(result.last_label_date), "purge_sessions": result.purge_sessions, "feature_version": feature_version,
            "thin_every": result.thin_every, "cadence": models.cadence, "horizon": models.horizon,
        }  # fmt: skip
        metrics = {"is_rank_ic": result.is_rank_ic, "val_rank_ic": val[0], "val_sessions": val[1], "train_rows": result.train_rows,
                   "train_sessions": result.train_sessions, "fit_seconds": result.fit_seconds}  # fmt: skip
        self.client.log_batch(
            rid,
            params=[Param(k, str(v)[:6000]) for k, v in params.items()],
            metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items() if v is not None],
            tags=[RunTag("artifact_path", artifact_rel)],
        )
        src = self.root / "staging" / Path(artifact_rel).name
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(result.artifact)
        self.client.log_artifact(rid, str(src), artifact_path="model")
        src.unlink()
        self.client.set_terminated(rid)
        self._ensure_registered(result.family)
        self.client.create_model_version(
            result.family, source=f"{run.info.artifact_uri}/model/{Path(artifact_rel).name}", run_id=rid,
            tags={"agent": result.agent, "model_version": result.version, "training_session": str(result.date)},
        )  # fmt: skip
        return rid

    def set_aliases(self, family: str, champion_version: str | None, challenger_version: str | None) -> dict:
        """Point the family's `champion` / `challenger` aliases at the registered versions whose tag
        model_version is given (the newest registered one of each); returns {alias: registry version}."""
        self._ensure_registered(family)
        out = {}
        versions = self.client.search_model_versions(f"name='{family}'")
        for alias, mv in (("champion", champion_version), ("challenger", challenger_version)):
            hits = [v for v in versions if v.tags.get("model_version") == mv] if mv else []
            if hits:
                best = max(hits, key=lambda v: int(v.version))
                self.client.set_registered_model_alias(family, alias, best.version)
                out[alias] = best.version
        return out
