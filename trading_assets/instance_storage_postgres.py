"""The PostgreSQL instance storage with pooled connections (see PooledPostgresStorage); imported only by
an instance configured with it (deploy/dagster-postgres.yaml), through trading_assets.instance_storage."""

from dagster_postgres.storage import DagsterPostgresStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_SECONDS = 3600
POOL_MAX_OVERFLOW = 8


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose engines keep their connections open.

    Stock dagster-postgres uses SQLAlchemy's NullPool outside the webserver: every storage call
    opens a new PostgreSQL connection (TCP + authentication + backend start, ~3 ms here) and closes
    it; a daily cycle made ~350 of them (cProfile: 1.1 s of an 8 s run). This class applies, in every
    process (run workers, `trading-cycle`, the daemon), the pooled engines that `dagster-webserver`
    already builds for itself (`optimize_for_webserver`: pool_size 1 per storage plus overflow,
    connections recycled after POOL_RECYCLE_SECONDS), without a statement timeout (a run's batched
    inserts must not be cut off). Same tables, same URL, same config as `storage: postgres:`.

    deploy/dagster-postgres.yaml:
        storage:
          custom:
            module: trading_assets.instance_storage
            class: PooledPostgresStorage
            config:
              postgres_url: {env: DAGSTER_POSTGRES_URL}
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # statement_timeout 0 = none (PostgreSQL's default); the webserver re-applies its own on start
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage.optimize_for_webserver(statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_MAX_OVERFLOW)

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "PooledPostgresStorage":  # type: ignore[override]
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
