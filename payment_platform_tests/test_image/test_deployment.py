"""The deployment started from the image, as the image's non-root user on the host network, against an
embedded stack on the host: the code server (asked over gRPC), the webserver and the daemon (an instance like
infra/dagster.yaml, storage in the stack's Postgres, the code location loaded from that code server the way
infra/workspace.grpc.yaml does) and the REST API. 1,000 payments published from the host must land exactly once
in both stores through runs the containerised daemon launched, and the containerised UI must show the lineage."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
import yaml

from payment_platform_tests.test_image.engine import REPO, Container, free_port, wait_for
from payment_platform_tests.test_infra import infra_files as infra

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(900)]

PAYMENTS = 1000
DAGSTER_HOME = "/opt/dagster/dagster_home"
START_TIMEOUT_S = 240  # a cold import of the code location on a loaded 2-core machine, inside a container
INGEST_TIMEOUT_S = 300
INGEST_JOB = "ingest_partition_lease_job"  # what the sensor launches: one lease per partition
RANGE_TAG = "payment_platform/range"
HBASE_ASSET = ["hbase", "payments"]
POSTGRES_ASSET = ["postgres", "payments"]
TOPIC_ASSET = ["kafka", "payment_transactions"]


def _compose_command(service: str, replace: dict[str, str] | None = None) -> list[str]:
    """A service's command from infra/docker-compose.yml, with option values replaced ({"-p": port})."""
    command = list(infra.load_yaml(infra.COMPOSE_FILE)["services"][service]["command"])
    for option, value in (replace or {}).items():
        command[command.index(option) + 1] = value
    return command


def http_get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


@dataclass
class Deployment:
    code: Container
    webserver: Container
    daemon: Container
    api: Container
    code_port: int
    web_port: int
    api_port: int
    seconds_to_definitions: float

    def containers(self) -> list[Container]:
        return [self.code, self.webserver, self.daemon, self.api]

    def died(self) -> str | None:
        return next((d for c in self.containers() if (d := c.died())), None)

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.logs(40)}" for c in self.containers())


def _list_repositories(port: int):
    from payment_platform_tests.dagster_internals import DagsterGrpcClient
    from dagster_shared.serdes import deserialize_value

    try:
        return deserialize_value(DagsterGrpcClient(port=port, host="127.0.0.1").list_repositories())
    except Exception:  # noqa: BLE001 - not serving yet
        return None


@pytest.fixture(scope="module")
def deployment(engine, image, host_stack, tmp_path_factory, figures):
    config_dir = tmp_path_factory.mktemp("dagster_files")
    config_dir.chmod(0o755)  # mounted into containers that run as uid 10001
    code_port, web_port, api_port = free_port(), free_port(), free_port()
    workspace = yaml.safe_load((REPO / "infra" / "workspace.grpc.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=code_port)
    (config_dir / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    (config_dir / "workspace.yaml").chmod(0o644)

    storage, failed = engine.volume("dagster-storage"), engine.volume("failed-payments")
    instance = f"{REPO / 'infra' / 'dagster.yaml'}:{DAGSTER_HOME}/dagster.yaml:ro"
    files = [instance, f"{config_dir / 'workspace.yaml'}:{DAGSTER_HOME}/workspace.yaml:ro",
             f"{storage}:{DAGSTER_HOME}/storage"]
    stores = host_stack.container_env
    dagster_env = {"DAGSTER_POSTGRES_URL": stores["DAGSTER_POSTGRES_URL"]}  # all compose gives them

    began = time.monotonic()
    code = engine.run("code", image, _compose_command("dagster-code", {"-h": "127.0.0.1", "-p": str(code_port)}),
                      env=stores, mounts=[instance, f"{storage}:{DAGSTER_HOME}/storage",
                                          f"{failed}:/var/lib/payment_platform/failed_payments"])
    served = wait_for(lambda: _list_repositories(code_port), START_TIMEOUT_S, 0.25, alive=code.died)
    assert served, f"the code server served nothing within {START_TIMEOUT_S} s:\n{code.logs()}"
    seconds = time.monotonic() - began
    figures["podman run -> definitions served over gRPC"] = f"{seconds:.1f} s"

    webserver = engine.run("webserver", image, _compose_command("dagster-webserver", {"-h": "127.0.0.1", "-p": str(web_port)}),
                           env=dagster_env, mounts=files)
    daemon = engine.run("daemon", image, _compose_command("dagster-daemon"), env=dagster_env, mounts=files)
    api = engine.run("api", image, ["payment-platform", "api", "--host", "127.0.0.1", "--port", str(api_port)],
                     env=stores, mounts=[f"{failed}:/var/lib/payment_platform/failed_payments"])
    deployed = Deployment(code, webserver, daemon, api, code_port, web_port, api_port, seconds)
    for url in (f"http://127.0.0.1:{web_port}/server_info", f"http://127.0.0.1:{api_port}/livez"):
        answered = wait_for(lambda url=url: _status(url) == 200, START_TIMEOUT_S, 0.5, alive=deployed.died)
        assert answered, f"{url} did not answer within {START_TIMEOUT_S} s:\n{deployed.logs()}"
    yield deployed
    for container in deployed.containers():
        engine("rm", "-f", "-v", "-t", "5", container.name, check=False, timeout=60)


def _status(url: str) -> int | None:
    try:
        return http_get(url, timeout=5)[0]
    except OSError:  # not listening yet
        return None


@pytest.fixture(scope="module")
def published(deployment, host_stack) -> list[str]:
    """1,000 valid payments published from the host with the project's publisher; their ids."""
    from payment_platform.generation.generator import generate
    from payment_platform.generation.settings import GenerationSettings
    from payment_platform.stores import kafka

    bootstrap, topic = host_stack.env["KAFKA_BOOTSTRAP_SERVERS"], host_stack.env["PAYMENTS_TOPIC"]
    messages = list(generate(PAYMENTS, seed=21, settings=GenerationSettings(bad_fraction=0.0)))
    kafka.ensure_topic(bootstrap, topic)
    with kafka.Publisher(bootstrap, topic) as publisher:
        result = publisher.publish(messages)
    assert result.acknowledged == PAYMENTS
    ids = [m.payment_id for m in messages]
    assert len(set(ids)) == PAYMENTS
    return ids


def test_code_server_in_the_image_serves_the_code_location_over_grpc(deployment):
    response = _list_repositories(deployment.code_port)
    pointers = response.repository_code_pointer_dict
    assert [p.module for p in pointers.values()] == [_compose_command("dagster-code")[-1]]


def test_every_process_runs_as_the_image_user(deployment):
    for container in deployment.containers():
        status = container.exec("cat", "/proc/1/status")
        assert status.returncode == 0, status.stderr
        uids = next(line.split()[1:] for line in status.stdout.splitlines() if line.startswith("Uid:"))
        assert set(uids) == {"10001"}, f"{container.name}: PID 1 runs with uids {uids}"


def test_daemon_launched_runs_land_every_payment_exactly_once_in_both_stores(deployment, host_stack, published,
                                                                              figures):
    from payment_platform.stores.hbase import HBaseStore
    from payment_platform.stores.postgres import PostgresLedger

    env = host_stack.env
    ledger = PostgresLedger(env["POSTGRES_DSN"])
    hbase = HBaseStore(env["HBASE_HOST"], int(env["HBASE_PORT"]))
    wanted = set(published)
    began = time.monotonic()

    def landed():
        try:
            return wanted <= ledger.existing_ids(published) and wanted <= hbase.existing_ids(published)
        except Exception:  # noqa: BLE001 - the first run creates the tables
            return False

    assert wait_for(landed, INGEST_TIMEOUT_S, 2.0, alive=deployment.died), \
        f"not all {PAYMENTS} payments landed within {INGEST_TIMEOUT_S} s:\n{deployment.logs()}"
    figures["1,000 payments published -> in both stores"] = f"{time.monotonic() - began:.1f} s"

    # exactly once: the stores hold these payments and nothing else, once each
    assert ledger.count_payments() == PAYMENTS
    rows = [key for key, _ in hbase.scan_payments(columns=[b"cf:paymentId"])]
    assert len(rows) == len(set(rows)) == PAYMENTS
    assert hbase.count_index() == PAYMENTS

    # landed by runs the containerised daemon launched from the sensor, all successful
    runs = _ingestion_runs(deployment.web_port)
    summary = sorted((_tag(r, RANGE_TAG) or "", r["status"], _tag(r, "dagster/sensor_name") or "") for r in runs)
    assert runs and all(sensor == "payments_ingestion_sensor" for *_, sensor in summary), summary
    # every lease the sensor requested ended in a successful run
    assert {rng for rng, status, _ in summary if status == "SUCCESS"} == {rng for rng, *_ in summary}, summary


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)


def _ingestion_runs(port: int) -> list[dict]:
    def finished():
        data = graphql(port, """query($filter: RunsFilter!) { runsOrError(filter: $filter, limit: 500) {
            ... on Runs { results { runId status tags { key value } } } } }""", {"filter": {"pipelineName": INGEST_JOB}})
        runs = data["runsOrError"]["results"]
        return runs if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs) else None

    return wait_for(finished, 120, 2.0) or []


def test_the_ui_of_the_containerised_webserver_shows_the_lineage(deployment, published):
    nodes = graphql(deployment.web_port, """{ assetNodes { assetKey { path } dependencyKeys { path }
        assetMaterializations(limit: 1) { runId } } }""")["assetNodes"]
    by_key = {tuple(n["assetKey"]["path"]): n for n in nodes}
    for store in (HBASE_ASSET, POSTGRES_ASSET):
        node = by_key[tuple(store)]
        assert TOPIC_ASSET in [d["path"] for d in node["dependencyKeys"]], f"{store} does not read the topic"

    def materialized():
        return all(by_key_now[tuple(k)]["assetMaterializations"] for k in (HBASE_ASSET, POSTGRES_ASSET)) \
            if (by_key_now := {tuple(n["assetKey"]["path"]): n for n in graphql(deployment.web_port,
                """{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }""")["assetNodes"]}) \
            else False

    assert wait_for(materialized, INGEST_TIMEOUT_S, 2.0, alive=deployment.died), \
        "the UI shows no materialization of the stores' payments"


def test_compute_logs_of_runs_are_written_by_the_non_root_user_and_shown_to_the_webserver(deployment, published):
    """Runs execute in the code server's container (DefaultRunLauncher); their logs land in the volume the
    webserver reads."""
    def logs_present():
        listing = deployment.webserver.exec("sh", "-c", f"find {DAGSTER_HOME}/storage -type f | head -n 5")
        return listing.stdout.split() if listing.returncode == 0 else None

    assert wait_for(logs_present, 120, 2.0), "no compute log in the shared storage volume"


def test_rest_api_in_the_image_answers_livez_and_a_lookup(deployment, published):
    status, body = http_get(f"http://127.0.0.1:{deployment.api_port}/livez")
    assert status == 200, body
    payment_id = published[len(published) // 2]

    def found():
        status, body = http_get(f"http://127.0.0.1:{deployment.api_port}/payments/{payment_id}")
        return json.loads(body) if status == 200 else None

    payment = wait_for(found, INGEST_TIMEOUT_S, 2.0, alive=deployment.died)
    assert payment is not None, f"GET /payments/{payment_id} never answered 200"
    assert payment_id in json.dumps(payment)
