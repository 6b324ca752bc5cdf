"""`payment-platform up` (what `make up` runs) on free ports, driven over the webserver's GraphQL API the way the
Dagster UI drives it. One `up` per module (module-scoped fixture): it takes ~30-60 s on a loaded 2-core machine."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.stack.manager import free_ports, remove_data_dir
from devstack.stack.services import SERVICES
from payment_platform_tests import waiting
from payment_platform_tests.test_stack.conftest import clean_env, processes_under, wait_until_gone

LOCATION = "payment_platform"
REPOSITORY = "__repository__"
REPO = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

# The mutations exactly as the Dagster UI (dagster-webserver 1.13) sends them.
LAUNCH = """mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { id runId pipelineName } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}"""
START_SENSOR = """mutation StartSensor($sensorSelector: SensorSelector!) {
  startSensor(sensorSelector: $sensorSelector) {
    __typename ... on Sensor { id sensorState { id status selectorId } } ... on PythonError { message }
  }
}"""
STOP_SENSOR = """mutation StopRunningSensor($id: String!) {
  stopSensor(id: $id) {
    __typename ... on StopSensorMutationResult { instigationState { id status } } ... on PythonError { message }
  }
}"""
START_SCHEDULE = """mutation StartThisSchedule($scheduleSelector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $scheduleSelector) {
    __typename ... on ScheduleStateResult { scheduleState { id status } } ... on PythonError { message }
  }
}"""
STOP_SCHEDULE = """mutation StopSchedule($id: String!) {
  stopRunningSchedule(id: $id) {
    __typename ... on ScheduleStateResult { scheduleState { id status } } ... on PythonError { message }
  }
}"""


@dataclass
class DagsterUI:
    port: int
    data_dir: Path
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        assert not answer.get("errors"), answer["errors"]
        return answer["data"]

    def launch(self, job: str, run_config: dict | None = None, assets: list[list[str]] | None = None,
               checks: list[tuple[list[str], str]] | None = None) -> dict:
        """launchPipelineExecution as the UI sends it: a job from the Launchpad, or `__ASSET_JOB` with the asset
        and check selection of a Materialize / Execute button. Returns the mutation's answer."""
        selector = {**REPO, "pipelineName": job}
        if assets is not None:
            selector["assetSelection"] = [{"path": path} for path in assets]
        if checks is not None:
            selector["assetCheckSelection"] = [{"assetKey": {"path": path}, "name": name} for path, name in checks]
        params = {"selector": selector, "mode": "default", "runConfigData": run_config or {},
                  "executionMetadata": {"tags": []}}
        return self.query(LAUNCH, {"executionParams": params})["launchPipelineExecution"]

    def launched_run(self, *args, **kwargs) -> str:
        answer = self.launch(*args, **kwargs)
        assert answer["__typename"] == "LaunchRunSuccess", answer
        return answer["run"]["runId"]

    def run(self, run_id: str) -> dict:
        return self.query("""query($id: ID!) { runOrError(runId: $id) { __typename ... on Run {
            runId status jobName stepStats { stepKey status } } } }""", {"id": run_id})["runOrError"]

    def wait_for_run(self, run_id: str, timeout: float = 420) -> dict:
        return waiting.wait_until(lambda: (run := self.run(run_id))["status"] in TERMINAL and run, timeout,
                                  f"run {run_id} finishing", every_s=1.0, detail=lambda: f"the run: {self.run(run_id)}")

    def run_messages(self, run_id: str) -> list[str]:
        """Every log message of the run, a step failure's error included (a dg.Failure's description)."""
        data = self.query("""query($id: ID!) { logsForRun(runId: $id, limit: 5000) { __typename
            ... on EventConnection { events { __typename ... on MessageEvent { message }
                ... on ExecutionStepFailureEvent { error { message } } } } } }""", {"id": run_id})
        return [" ".join(filter(None, [e.get("message"), (e.get("error") or {}).get("message")]))
                for e in data["logsForRun"]["events"]]

    def check_executions(self, path: list[str], name: str, limit: int = 20) -> list[dict]:
        return self.query("""query($key: AssetKeyInput!, $name: String!, $limit: Int!) {
            assetCheckExecutions(assetKey: $key, checkName: $name, limit: $limit) {
              runId status evaluation { success description } } }""",
                          {"key": {"path": path}, "name": name, "limit": limit})["assetCheckExecutions"]


def wait_for_location(ui: DagsterUI, timeout: float = 240.0) -> None:
    entries = waiting.wait_for_location(lambda query: ui.query(query, timeout=5), ui.process, timeout)
    errors = [e for e in entries.values() if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
    assert not errors, errors


@pytest.fixture(scope="module")
def dagster_ui():
    """`payment-platform up` on free ports in a fresh data dir; Ctrl+C (SIGINT) at the end of the module."""
    from payment_platform_tests.conftest import stack_data_dir

    data_dir = stack_data_dir("payment-platform-test-ui-") / "data"
    *service_ports, ui_port, api_port = free_ports(len(SERVICES) + 2)
    ports = [arg for name, port in zip(SERVICES, service_ports) for arg in ("--port", f"{name}={port}")]
    log = open(data_dir.parent / "up.log", "w")  # noqa: SIM115 - closed in the teardown
    process = subprocess.Popen(
        [sys.executable, "-m", "payment_platform.cli", "up", "--data-dir", str(data_dir),
         "--dagster-port", str(ui_port), "--api-port", str(api_port), *ports],
        # the webserver's and daemon's calls to the code server (launching a run) time out after 60 s by default:
        # on a shared 2-core CI machine under load that refuses runs that would start fine a little later
        env=clean_env(DAGSTER_GRPC_TIMEOUT_SECONDS="300"), stdout=log, stderr=subprocess.STDOUT, text=True)
    ui = DagsterUI(ui_port, data_dir, process)
    try:
        wait_for_location(ui)
        yield ui
    finally:
        import psutil

        try:
            everything = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            everything = []
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        wait_until_gone(everything)
        for proc in processes_under(data_dir):  # never leave a server behind, whatever happened
            proc.kill()
        remove_data_dir(data_dir.parent)  # and its Postgres cluster, kept outside it when private (root)
