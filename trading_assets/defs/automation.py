"""Operating the graph: the whole-graph job, the daily schedule, the price_history freshness check
and its deadline schedule, and the run-failure sensor.

- `trading_cycle` (JOBS): every asset and check of the graph, in-process executor (one process
  holds the DuckDB write lock for the whole run). Launch it by hand from the UI's Jobs page.
- `daily_close` (SCHEDULES): 18:00 New York, Mon-Fri. On an NYSE session it requests ONE run of
  that session's partition with `run_key = session`, so a tick never runs a session twice (Dagster
  refuses a second run with the same key for the same schedule); on an exchange holiday it skips and
  the tick says why in the UI.
- `price_history_fresh` (CHECKS, registered by definitions.py): passes when the session that is due
  (`expected_session`: the last session whose close + deadline has passed) has a materialization of
  price_history recorded in the Dagster instance. Holidays never alarm: on a holiday the due session
  is still the previous one. It reads only the instance, never DuckDB, so it never waits on the writer.
- `price_history_freshness_deadline` (SCHEDULES): at the deadline on weekdays, runs that check once
  per due session (run_key = the session, so a holiday tick repeats nothing).
- `record_run_failure` (SENSORS, running by default): every failed run -> one `run_failure` row in
  audit_log (session window, failed steps with their assets and errors) and, when
  TRADING_WEBHOOK_URL is set, the same JSON POSTed to it.
- `draw_evaluation_plots` (SENSORS, running by default): after a successful single-session run that
  wrote performance, one run of `evaluation_plots_job` for that session (the research record's
  pictures, defs/evaluation_plots.py), with the run's own resources; run_key = the run id.
- `raise_data_incident` (SENSORS, running by default): a run that SUCCEEDED with halted sessions (a
  systemic data fault handled by halting those sessions, defs/quality.py: the run goes on, so the
  failure sensor never sees it) -> one `data_incident` row in audit_log (the run, its window, the
  halted sessions with their failing share, codes and example symbols, read from the
  quality_failing_share_within_limit evaluation of the run in the Dagster instance) and the same
  JSON POSTed to TRADING_WEBHOOK_URL (event "data_incident"). The run itself has already written one
  `session_halted` audit row per halted session, daemon or not.

The three run-status sensors watch every run of the instance (`monitor_all_code_locations`): a
`trading-cycle` run executes in process and has no code-location origin, so a daemon running on the same
DAGSTER_HOME would otherwise never see the CLI's runs.

The schedules ship STOPPED (Dagster's default): turning them on is an operator's decision, made once
in the UI (Automation page) or with `dagster schedule start daily_close -m trading_assets.definitions`;
the instance remembers it.
"""


import json
import urllib.error
import urllib.request
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import dagster as dg

from trading_assets.domain import calendar
from trading_assets.settings import OpsSettings, load_ops_settings, load_settings
from trading_assets.store.warehouse import Warehouse

OPS = load_ops_settings()

TRADING_CYCLE_JOB_NAME = "trading_cycle"
FRESHNESS_JOB_NAME = "price_history_freshness"
DAILY_SCHEDULE_NAME = "daily_close"
FRESHNESS_SCHEDULE_NAME = "price_history_freshness_deadline"
FAILURE_SENSOR_NAME = "record_run_failure"
PRICE_HISTORY_FRESH = "price_history_fresh"
EVALUATION_PLOTS_ASSET = "evaluation_plots"
EVALUATION_PLOTS_JOB_NAME = "evaluation_plots_job"
PLOTS_SENSOR_NAME = "draw_evaluation_plots"

# One process per run: steps share the process that holds DuckDB's single write lock (definitions.py
# should pass it as the Definitions' executor so the UI's implicit asset job uses it too).
EXECUTOR = dg.in_process_executor


def _deadline(ops: OpsSettings) -> time:
    hh, mm = ops.freshness_deadline.split(":")
    return time(int(hh), int(mm))


def expected_session(now: datetime, deadline: time, tz: str = OPS.timezone) -> date:
    """The session whose price_history must be recorded at `now`.

    Today if today is a session and its deadline has passed (New York time), otherwise the last
    session before today: on a holiday, a weekend or before the deadline, the due session is the
    previous one, whose own deadline passed long ago -- so holidays never raise an alarm of their own.
    """
    local = now.astimezone(ZoneInfo(tz)) if now.tzinfo else now.replace(tzinfo=ZoneInfo(tz))
    today = local.date()
    if calendar.is_session(today) and local.time() >= deadline:
        return today
    return calendar.previous_session(today)


def session_of_tick(context: dg.ScheduleEvaluationContext, tz: str = OPS.timezone) -> date:
    """The New York calendar date of a schedule tick (now, when evaluated by hand without a time)."""
    tick = context.scheduled_execution_time or datetime.now(ZoneInfo(tz))
    return tick.astimezone(ZoneInfo(tz)).date()


# --- freshness ---------------------------------------------------------------------------------
@dg.asset_check(
    asset="price_history",
    name=PRICE_HISTORY_FRESH,
    blocking=False,
    description=(
        f"price_history of the session that just closed is recorded by {OPS.freshness_deadline} New York time on "
        "session days (the previous session on holidays and weekends, so they never alarm). Reads the Dagster "
        "instance only. Evaluated by the price_history_freshness_deadline schedule."
    ),
)
def price_history_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    ops = load_ops_settings()
    deadline = _deadline(ops)
    now = datetime.now(ZoneInfo(ops.timezone))
    due = expected_session(now, deadline, ops.timezone)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("price_history"), asset_partitions=[due.isoformat()]), limit=1
    ).records
    due_at = datetime.combine(due, deadline, tzinfo=ZoneInfo(ops.timezone))
    metadata: dict = {
        "due_session": due.isoformat(),
        "deadline": dg.MetadataValue.timestamp(due_at),
        "evaluated_at": dg.MetadataValue.timestamp(now),
    }
    if records:
        arrived = records[0].timestamp
        metadata["materialized_at"] = dg.MetadataValue.timestamp(arrived)
        metadata["arrived_late"] = arrived > due_at.timestamp()
        metadata["run_id"] = records[0].run_id
        return dg.AssetCheckResult(passed=True, metadata=metadata, description=f"session {due} is in")
    return dg.AssetCheckResult(
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=f"price_history for session {due} is not recorded (due by {due_at:%Y-%m-%d %H:%M %Z})",
    )


# --- jobs ------------------------------------------------------------------------------------------
# Every asset and check of the graph except the wall-clock freshness check (it has its own job) and
# the pictures (evaluation_plots: drawn after the run by draw_evaluation_plots, off the cycle's path).
TRADING_CYCLE_JOB = dg.define_asset_job(
    TRADING_CYCLE_JOB_NAME,
    selection=(dg.AssetSelection.all() - dg.AssetSelection.checks(price_history_fresh)
               - dg.AssetSelection.assets(EVALUATION_PLOTS_ASSET)),
    executor_def=EXECUTOR,
    description=(
        "The whole trading graph (universe -> market data -> quality -> features -> agents -> Meta-Brain -> "
        "risk gate, orders, positions, portfolio -> cycle summary) for the selected session(s). A range runs "
        "as ONE run (single-run backfill policy) that walks the sessions in order."
    ),
    tags={"trading/job": TRADING_CYCLE_JOB_NAME},
)

EVALUATION_PLOTS_JOB = dg.define_asset_job(
    EVALUATION_PLOTS_JOB_NAME,
    selection=dg.AssetSelection.assets(EVALUATION_PLOTS_ASSET),
    executor_def=EXECUTOR,
    description="Draws a session's research-record pictures (evaluation_plots); requested by draw_evaluation_plots.",
    tags={"trading/job": EVALUATION_PLOTS_JOB_NAME},
)

FRESHNESS_JOB = dg.define_asset_job(
    FRESHNESS_JOB_NAME,
    selection=dg.AssetSelection.checks(price_history_fresh),
    executor_def=EXECUTOR,
    description="Evaluates the price_history freshness check (reads the Dagster instance only).",
)


# --- schedules -------------------------------------------------------------------------------------
@dg.schedule(
    name=DAILY_SCHEDULE_NAME,
    cron_schedule=OPS.schedule_cron,
    execution_timezone=OPS.timezone,
    job=TRADING_CYCLE_JOB,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=(
        "After the NYSE close (18:00 New York, Mon-Fri): one run of the whole graph for the session that just "
        "closed; run key = the session, so no session runs twice; exchange holidays are skipped with a reason."
    ),
)
def daily_close(context: dg.ScheduleEvaluationContext):
    session = session_of_tick(context)
    if not calendar.is_session(session):
        return dg.SkipReason(f"{session} ({session:%A}) is not an NYSE session (exchange holiday): nothing to run")
    key = session.isoformat()
    return dg.RunRequest(run_key=key, partition_key=key, tags={"trading/source": "schedule", "trading/session": key})


_hh, _mm = OPS.freshness_deadline.split(":")


@dg.schedule(
    name=FRESHNESS_SCHEDULE_NAME,
    cron_schedule=f"{int(_mm)} {int(_hh)} * * 1-5",
    execution_timezone=OPS.timezone,
    job=FRESHNESS_JOB,
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description=f"At the freshness deadline ({OPS.freshness_deadline} New York, Mon-Fri): evaluates price_history_fresh once per due session.",
)
def price_history_freshness_deadline(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time or datetime.now(ZoneInfo(OPS.timezone))
    due = expected_session(tick, _deadline(OPS), OPS.timezone)
    # run_key = the due session: on a holiday the due session is the one checked the day before -> no new run.
    # dagster/priority: dequeued ahead of other waiting runs (it only reads the instance).
    return dg.RunRequest(run_key=f"freshness-{due.isoformat()}", tags={"dagster/priority": "5", "trading/session": due.isoformat()})


# --- run failures ----------------------------------------------------------------------------------
def session_window_of_run(tags: dict) -> tuple[str | None, str | None]:
    """(first, last) session of a run from its tags: a single partition or a single-run range."""
    if "dagster/asset_partition_range_start" in tags:
        return tags["dagster/asset_partition_range_start"], tags.get("dagster/asset_partition_range_end")
    key = tags.get("dagster/partition")
    return (key, key) if key else (None, None)


def _assets_by_op(repository_def) -> dict[str, list[str]]:
    if repository_def is None:
        return {}
    out: dict[str, list[str]] = {}
    for assets_def in repository_def.assets_defs_by_key.values():
        if assets_def.is_executable and assets_def.node_def is not None:
            out.setdefault(assets_def.node_def.name, sorted({k.to_user_string() for k in assets_def.keys}))
    return out


def failure_payload(run, failure_message: str | None, step_failures: list, assets_by_op: dict[str, list[str]]) -> dict:
    """The JSON recorded for a failed run: which session(s), which steps/assets, which errors."""
    start, end = session_window_of_run(dict(run.tags))
    steps = []
    for ev in step_failures:
        err = getattr(ev.event_specific_data, "error", None)
        op = ev.step_key.split("[")[0] if ev.step_key else None
        steps.append(
            {
                "step": ev.step_key,
                "assets": assets_by_op.get(op or "", []),
                "error_class": err.cls_name if err else None,
                "error": (err.message.strip() if err else ev.message or "")[:2000],
            }
        )
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "session_start": start,
        "session_end": end,
        "source": run.tags.get("trading/source") or ("backfill" if run.tags.get("dagster/backfill") else None),
        "retry_number": int(run.tags.get("dagster/retry_number", 0)),
        "run_error": (failure_message or "")[:2000],
        "failed_steps": steps,
    }


def post_webhook(url: str, payload: dict, timeout_s: float, event: str = "run_failure") -> str:
    """POST {"event": event, **payload} as JSON; returns 'HTTP <status>' or the error (never raises: the audit row is the record)."""
    body = json.dumps({"event": event, **payload}, default=str).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return f"HTTP {resp.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"error: {exc}"


# Every run-status sensor watches ALL runs of the instance: a `trading-cycle` run is executed in process
# (no code-location origin), and Dagster's daemon matches a run to a sensor of a code location only by the
# run's origin, so without this the CLI's failed, halted and daily runs went unseen (each sensor's own
# filter decides what a run means to it).
MONITOR_ALL = {"monitor_all_code_locations": True}


@dg.run_failure_sensor(
    name=FAILURE_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    **MONITOR_ALL,
    description="Records every failed run (session, failed assets, error) in audit_log; POSTs it to TRADING_WEBHOOK_URL when set.",
)
def record_run_failure(context: dg.RunFailureSensorContext):
    ops = load_ops_settings()
    settings = load_settings()
    run = context.dagster_run
    payload = failure_payload(
        run,
        context.failure_event.message,
        list(context.get_step_failure_events()),
        _assets_by_op(context.repository_def),
    )
    end = payload["session_end"]
    wh = Warehouse(settings.db_path, settings.audit_dir, lock_timeout_s=ops.audit_lock_timeout_s)
    _audit_and_notify(context, wh, ops, "run_failure", run.run_id, date.fromisoformat(end) if end else None, payload)


def _audit_and_notify(context, wh: Warehouse, ops: OpsSettings, event: str, run_id: str, day: date | None, payload: dict) -> None:
    """One audit_log row (event_type = event) for the run, then the same payload POSTed to the webhook when set."""
    wh.ensure_schema()
    # Raises if the writer lock cannot be had: the tick fails and the sensor retries the same run next tick.
    wh.append_audit([{"event_type": event, "run_id": run_id, "date": day, "payload": payload}])
    if ops.webhook_url:
        outcome = post_webhook(ops.webhook_url, payload, ops.webhook_timeout_s, event=event)
        (context.log.info if outcome.startswith("HTTP 2") else context.log.warning)(f"webhook {outcome}")


# --- data incidents: halted sessions in a successful run -----------------------------------------------
DATA_INCIDENT_SENSOR_NAME = "raise_data_incident"
DATA_INCIDENT = "data_incident"  # audit_log event_type and webhook event
HALT_CHECK_NAME = "quality_failing_share_within_limit"  # defs/quality.py QUALITY_SHARE_WITHIN_LIMIT


def halted_sessions_of_run(instance, run_id: str) -> tuple[list[dict], str | None]:
    """(halted sessions, the check's description) from the run's failed evaluation of the quality
    failing-share check in the Dagster instance; ([], None) when it passed or did not run."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    for record in records:
        ev = record.event_log_entry.dagster_event.event_specific_data
        if ev.check_name == HALT_CHECK_NAME and not ev.passed:
            value = ev.metadata.get("halted_sessions")
            return list(getattr(value, "value", None) or []), ev.description
    return [], None


def incident_payload(run, halted: list[dict], description: str | None) -> dict:
    """The JSON recorded for a run with halted sessions (audit_log data_incident row and webhook body)."""
    start, end = session_window_of_run(dict(run.tags))
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "session_start": start,
        "session_end": end,
        "source": run.tags.get("trading/source") or ("backfill" if run.tags.get("dagster/backfill") else None),
        "reason": "SYSTEMIC_DATA_FAULT",
        "halted_sessions": halted,
        "description": description,
    }


def _warehouse_of_run(run, ops: OpsSettings) -> Warehouse:
    """The warehouse the run wrote: its run config's (the CLI passes it), else the environment's."""
    cfg = ((run.run_config or {}).get("resources", {}).get("warehouse", {}) or {}).get("config", {}) or {}
    if cfg.get("db_path"):
        return Warehouse(cfg["db_path"], cfg.get("audit_dir") or None, lock_timeout_s=ops.audit_lock_timeout_s)
    settings = load_settings()
    return Warehouse(settings.db_path, settings.audit_dir, lock_timeout_s=ops.audit_lock_timeout_s)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name=DATA_INCIDENT_SENSOR_NAME,
    default_status=dg.DefaultSensorStatus.RUNNING,
    **MONITOR_ALL,
    description=(
        "Raises an incident for every successful run with halted sessions (systemic data faults the run went on "
        "past): one data_incident row in audit_log; POSTs it to TRADING_WEBHOOK_URL when set."
    ),
)
def raise_data_incident(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    halted, description = halted_sessions_of_run(context.instance, run.run_id)
    if not halted:
        return dg.SkipReason(f"run {run.run_id}: no halted session")
    ops = load_ops_settings()
    payload = incident_payload(run, halted, description)
    context.log.warning(f"{DATA_INCIDENT}: {len(halted)} halted session(s) in run {run.run_id}: {description}")
    _audit_and_notify(context, _warehouse_of_run(run, ops), ops, DATA_INCIDENT, run.run_id, date.fromisoformat(halted[-1]["date"]), payload)
    return None


def _materialized_by(instance: dg.DagsterInstance, asset: str, partition: str, run_id: str) -> bool:
    """True when the latest materialization of asset[partition] is the run's."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    return bool(records) and records[0].run_id == run_id


def plots_request(instance: dg.DagsterInstance, run) -> dg.RunRequest | dg.SkipReason:
    """What draw_evaluation_plots asks for after a successful run: one run of evaluation_plots for the
    run's session when the run was a single session that materialized performance and did not draw
    (run_key = the run's id, so a run is drawn once), with the run's own resources (the same warehouse
    and settings: the CLI passes them as run config); else why not."""
    if run.job_name == EVALUATION_PLOTS_JOB_NAME:
        return dg.SkipReason(f"run {run.run_id} drew the pictures itself")
    partition = run.tags.get("dagster/partition")
    if partition is None:
        return dg.SkipReason(f"run {run.run_id} is not a single-session run (a range run draws its last session)")
    if not _materialized_by(instance, "performance", partition, run.run_id):
        return dg.SkipReason(f"run {run.run_id} did not materialize performance for {partition}")
    if _materialized_by(instance, EVALUATION_PLOTS_ASSET, partition, run.run_id):
        return dg.SkipReason(f"run {run.run_id} drew {partition} itself")
    resources = (run.run_config or {}).get("resources")
    return dg.RunRequest(
        run_key=f"plots-{run.run_id}",
        partition_key=partition,
        run_config={"resources": resources} if resources else {},
        tags={"trading/plots_for_run": run.run_id},
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name=PLOTS_SENSOR_NAME,
    request_job=EVALUATION_PLOTS_JOB,
    default_status=dg.DefaultSensorStatus.RUNNING,
    **MONITOR_ALL,
    minimum_interval_seconds=10,  # the pictures follow the daily run within seconds, not the daemon's default 30
    description=(
        "After a successful single-session run (the daily schedule, trading-cycle --date D, a partition "
        "materialized from the UI) that wrote performance: one run of evaluation_plots for that session, with the "
        "run's own warehouse and settings, so the daily cycle does not pay for matplotlib."
    ),
)
def draw_evaluation_plots(context: dg.RunStatusSensorContext):
    return plots_request(context.instance, context.dagster_run)


JOBS = [TRADING_CYCLE_JOB, FRESHNESS_JOB, EVALUATION_PLOTS_JOB]
SCHEDULES = [daily_close, price_history_freshness_deadline]
SENSORS = [record_run_failure, raise_data_incident, draw_evaluation_plots]
CHECKS = [price_history_fresh]
