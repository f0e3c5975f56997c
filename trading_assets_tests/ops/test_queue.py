"""One DuckDB writer at a time: two runs launched together through a real `dagster dev` instance (the
project's dagster.yaml: run queue of one) -> the second waits QUEUED, starts after the first ends,
and both succeed."""

from __future__ import annotations

import time

import pytest

from trading_assets_tests.ops.conftest import RUN_CONFIG

pytestmark = pytest.mark.slow  # starts dagster dev (~20 s) and two real runs

LAUNCH = """
mutation($p: ExecutionParams!) {
  launchRun(executionParams: $p) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime assetSelection { path } tags { key value } } } }"


def location(dev) -> tuple[str, str]:
    data = dev.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    [repo] = data["repositoriesOrError"]["nodes"]
    return repo["location"]["name"], repo["name"]


def launch(dev, job: str, partition: str) -> str:
    loc, repo = location(dev)
    params = {
        "selector": {"repositoryLocationName": loc, "repositoryName": repo, "jobName": job},
        "runConfigData": RUN_CONFIG,
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": partition}]},
    }
    out = dev.graphql(LAUNCH, {"p": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def launch_range(dev, job: str, start: str, end: str) -> str:
    """One run over a range of sessions: the Launchpad with the single-run range tags."""
    loc, repo = location(dev)
    params = {
        "selector": {"repositoryLocationName": loc, "repositoryName": repo, "jobName": job},
        "runConfigData": RUN_CONFIG,
        "executionMetadata": {"tags": [{"key": "dagster/asset_partition_range_start", "value": start},
                                       {"key": "dagster/asset_partition_range_end", "value": end}]},
    }
    out = dev.graphql(LAUNCH, {"p": params})["launchRun"]
    assert out["__typename"] == "LaunchRunSuccess", out
    return out["run"]["runId"]


def run_state(dev, run_id: str) -> dict:
    return dev.graphql(RUN, {"id": run_id})["runOrError"]


def wait_done(dev, run_ids: list[str], timeout: float = 300) -> tuple[dict, list[tuple[str, ...]]]:
    seen: list[tuple[str, ...]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {r: run_state(dev, r) for r in run_ids}
        seen.append(tuple(states[r]["status"] for r in run_ids))
        if all(s["status"] in ("SUCCESS", "FAILURE", "CANCELED") for s in states.values()):
            return states, seen
        time.sleep(0.5)
    raise AssertionError(f"runs not done in {timeout} s; statuses seen {seen[-5:]}\n{dev.tail()}")


def test_a_second_run_waits_for_the_first_then_succeeds(dagster_dev):
    # the first two sessions of the history: the path-dependent book needs them in this order (the queue is FIFO)
    first = launch(dagster_dev, "trading_cycle", "2024-01-02")
    second = launch(dagster_dev, "trading_cycle", "2024-01-03")
    states, seen = wait_done(dagster_dev, [first, second])
    assert [states[first]["status"], states[second]["status"]] == ["SUCCESS", "SUCCESS"], dagster_dev.tail()
    # the queue held the second run while the first one was in progress ...
    assert any(a in ("STARTING", "STARTED") and b == "QUEUED" for a, b in seen), seen
    # ... and never ran the two at once: the second started after the first ended
    assert states[second]["startTime"] >= states[first]["endTime"]
    assert not any(a in ("STARTING", "STARTED") and b in ("STARTING", "STARTED") for a, b in seen)
