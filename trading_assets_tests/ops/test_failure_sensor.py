"""The run-failure sensor on a real failed run: one audit_log row naming the session, the failed asset
and the error, and the same JSON POSTed to a webhook served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from trading_assets.defs import automation
from trading_assets.store.warehouse import Warehouse
from trading_assets_tests.ops.conftest import base_env, free_port, make_home


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/trading", _Hook.received
    finally:
        server.shutdown()
        server.server_close()


def test_a_failed_run_is_audited_and_posted(tmp_path, monkeypatch, webhook):
    url, received = webhook
    data, home = tmp_path / "data", make_home(tmp_path / "home")
    data.mkdir()
    for k, v in base_env(data, home).items():
        if k.startswith(("TRADING_", "DAGSTER_")):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("TRADING_WEBHOOK_URL", url)
    from trading_assets.definitions import defs

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # A real failed run of the graph in this instance: ZZZZ is a well-formed symbol that is not in
        # the universe, so the universe asset fails (the CLI refuses it before running, hence in process).
        result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
            instance=instance,
            partition_key="2024-03-01",
            run_config={"resources": {"pipeline": {"config": {"symbols": ["ZZZZ"]}}}},
            tags={"trading/source": "cli"},
            raise_on_error=False,
        )
        assert not result.success
        run_id = result.run_id

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        [record] = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        ctx = dg.build_run_status_sensor_context(
            sensor_name=automation.FAILURE_SENSOR_NAME,
            dagster_event=record.event_log_entry.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            repository_def=defs.get_repository_def(),
        ).for_run_failure()
        automation.record_run_failure(ctx)

    rows = Warehouse(data / "trading.duckdb").read("SELECT * FROM audit_log WHERE event_type = 'run_failure'")
    assert rows.height == 1
    row = rows.row(0, named=True)
    assert row["run_id"] == run_id and str(row["date"]) == "2024-03-01"
    payload = json.loads(row["payload"])
    assert (payload["session_start"], payload["session_end"], payload["source"]) == ("2024-03-01", "2024-03-01", "cli")
    [step] = payload["failed_steps"]
    assert step["step"] == "universe" and step["assets"] == ["universe"]
    assert "ZZZZ" in step["error"]
    # the JSONL mirror has the same event
    mirrored = [json.loads(x) for x in (data / "audit" / "audit-2024-03.jsonl").read_text().splitlines()]
    assert [m["event_id"] for m in mirrored if m["event_type"] == "run_failure"] == [row["event_id"]]

    [(path, ctype, body)] = received
    assert path == "/hooks/trading" and ctype == "application/json"
    assert body["event"] == "run_failure" and body["run_id"] == run_id and body["failed_steps"][0]["step"] == "universe"


def test_an_unreachable_webhook_is_reported_not_raised():
    outcome = automation.post_webhook(f"http://127.0.0.1:{free_port()}/nobody", {"run_id": "x"}, timeout_s=2)
    assert outcome.startswith("error:")


@pytest.mark.parametrize(
    ("tags", "window"),
    [
        ({"dagster/partition": "2024-03-01"}, ("2024-03-01", "2024-03-01")),
        ({"dagster/asset_partition_range_start": "2021-01-04", "dagster/asset_partition_range_end": "2025-12-31"}, ("2021-01-04", "2025-12-31")),
        ({}, (None, None)),
    ],
)
def test_session_window_of_run(tags, window):
    assert automation.session_window_of_run(tags) == window
