"""Every file under infra/ and the image recipe, checked without Docker or Kubernetes.

Schemas come from PyPI packages (check-jsonschema vendors the Compose Specification, kubernetes-validate
the Kubernetes API) or are vendored here (the Dagster Helm chart's values.schema.json); each validator is
also shown a broken file so a check that cannot fail would be noticed.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import tomllib

import dagster as dg
import jsonschema
import pytest
import yaml
from payment_platform_tests.dagster_internals import TagConcurrencyLimitsCounter
from kubernetes_validate import utils as k8s_validate

from payment_platform.config import ConfigError, endpoints_from_env
from payment_platform.defs.ingestion.sensors import run_request
from payment_platform.ingestion.planner import PlannedLease, PlannerSettings
from payment_platform.serving.api import LIVENESS_PATH, TOKEN_SETTING, create_app
from payment_platform.serving.cursor import CURSOR_KEY_SETTING
from payment_platform_tests.test_infra import infra_files as infra

PLATFORM_IMAGE = "payment-platform"
DAGSTER_SERVICES = ("dagster-code", "dagster-webserver", "dagster-daemon")


def compose() -> dict:
    return infra.load_compose()


def helm_values() -> dict:
    return infra.load_yaml(infra.HELM_VALUES)


def code_location_module() -> str:
    return tomllib.loads((infra.REPO / "pyproject.toml").read_text())["tool"]["dagster"]["module_name"]


def platform_services(spec: dict) -> dict[str, dict]:
    """The compose services that run the project's image (the stores run their vendors' images)."""
    return {name: s for name, s in spec["services"].items() if str(s.get("image", "")).startswith(PLATFORM_IMAGE)}


# --- YAML ---------------------------------------------------------------------------------------------------

def test_infra_holds_the_deployment_files():
    names = {p.relative_to(infra.INFRA).as_posix() for p in infra.infra_yaml_files()}
    assert {"docker-compose.yml", "dagster.yaml", "workspace.grpc.yaml", "helm/dagster-values.yaml",
            "k8s/api.yaml", "k8s/platform-config.yaml", "k8s/platform-secret.example.yaml"} <= names


@pytest.mark.parametrize("path", infra.infra_yaml_files(), ids=lambda p: p.relative_to(infra.INFRA).as_posix())
def test_every_yaml_file_under_infra_parses(path):
    documents = infra.load_yaml_documents(path)
    assert documents and all(isinstance(doc, dict) for doc in documents)


# --- compose ------------------------------------------------------------------------------------------------

def test_compose_file_validates_against_the_compose_specification():
    schema = infra.compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose())]
    assert errors == []


@pytest.mark.parametrize("breakage", ["unknown service key", "bad depends_on condition", "ports not a list"])
def test_compose_specification_rejects_a_broken_file(breakage):
    spec = compose()
    service = spec["services"]["dagster-code"]
    if breakage == "unknown service key":
        service["comand"] = ["dagster"]
    elif breakage == "bad depends_on condition":
        service["depends_on"] = {"postgres": {"condition": "service_ready"}}
    else:
        service["ports"] = "4000:4000"
    schema = infra.compose_spec_schema()
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(spec)


def test_compose_publishes_every_port_on_this_host_only():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_and_platform_env_hold_no_password_and_stop_without_one():
    for path in (infra.COMPOSE_FILE, infra.PLATFORM_ENV_FILE):
        text = path.read_text()
        assert "payments:payments" not in text and "POSTGRES_PASSWORD: payments" not in text, path
    for missing in ({}, {"POSTGRES_PASSWORD": ""}):
        with pytest.raises(infra.MissingVariable, match="POSTGRES_PASSWORD: set POSTGRES_PASSWORD"):
            infra.load_compose(missing)
        with pytest.raises(infra.MissingVariable, match="POSTGRES_PASSWORD"):
            infra.env_file_vars(infra.PLATFORM_ENV_FILE, missing)
    example = infra.env_file_vars(infra.INFRA / "compose.env.example", {})
    assert set(example) == set(infra.SAMPLE_SECRETS) and not any(example.values())  # names only, no value
    secret = "s3cret-Value"
    spec = infra.load_compose({"POSTGRES_PASSWORD": secret})
    assert spec["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == secret
    assert f"payments:{secret}@postgres" in spec["services"]["dagster-code"]["environment"]["POSTGRES_DSN"]
    assert f":{secret}@localhost" in infra.env_file_vars(infra.PLATFORM_ENV_FILE, {"POSTGRES_PASSWORD": secret})[
        "POSTGRES_DSN"]


def test_compose_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert infra.interpolate("${SET}-${EMPTY:-d}-${EMPTY-d}-${UNSET:-d}-${UNSET}-$$HOME", env) == "x-d--d--$HOME"
    with pytest.raises(infra.MissingVariable, match="UNSET: needed"):
        infra.interpolate({"a": ["${UNSET:?needed}"]}, env)
    assert infra.interpolate("${EMPTY?fine when empty}", env) == ""


def test_compose_runs_dagster_and_the_api_from_the_project_image():
    spec = compose()
    services = platform_services(spec)
    assert set(DAGSTER_SERVICES) | {"api"} <= set(services)
    for name, service in services.items():
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}, name
        assert "healthcheck" in service, f"{name} has no healthcheck"
    code_command = services["dagster-code"]["command"]
    assert code_command[:3] == ["dagster", "code-server", "start"]
    assert code_command[code_command.index("-m") + 1] == code_location_module()
    assert services["api"]["command"][:2] == ["payment-platform", "api"]
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_compose_api_healthcheck_passes_against_a_live_api_and_fails_without_one():
    from ..test_serving.conftest import ApiServer

    def no_stores():
        raise AssertionError("the health check must not need a store")

    kind, executable, flag, code = platform_services(compose())["api"]["healthcheck"]["test"]
    assert (kind, executable, flag) == ("CMD", "python", "-c") and LIVENESS_PATH in code
    with ApiServer(create_app(no_stores)) as api:
        check = [sys.executable, "-c", code.replace("localhost:8000", f"127.0.0.1:{api.port}")]
        assert subprocess.run(check, capture_output=True, timeout=30).returncode == 0
    assert subprocess.run(check, capture_output=True, timeout=30).returncode != 0


def test_compose_dependencies_name_services_that_report_health():
    services = compose()["services"]
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        for target, condition in (depends_on.items() if isinstance(depends_on, dict) else []):
            assert target in services, f"{name} depends on unknown service {target}"
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"
    for name in ("dagster-webserver", "dagster-daemon"):
        assert services[name]["depends_on"]["dagster-code"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_compose_mounts_files_that_exist_and_volumes_that_are_declared():
    spec = compose()
    mounted = []
    for name, service in spec["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                mounted.append(source)
                assert (infra.INFRA / source).exists(), f"{name} mounts {source}, which does not exist"
            else:
                assert source in spec["volumes"], f"{name} mounts volume {source}, not declared under volumes:"
    assert "./dagster.yaml" in mounted and "./workspace.grpc.yaml" in mounted


def test_compose_runs_and_webserver_share_the_compute_log_storage():
    """Runs execute in the code server; the UI shows their logs only if both see the same base_dir."""
    base_dir = infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)["compute_logs"]["config"]["base_dir"]
    services = compose()["services"]
    volumes = {name: {v.split(":")[0] for v in services[name]["volumes"] if v.split(":")[1] == base_dir}
               for name in ("dagster-code", "dagster-webserver")}
    assert volumes["dagster-code"] and volumes["dagster-code"] == volumes["dagster-webserver"]


def test_grpc_workspace_points_at_the_compose_code_server():
    (entry,) = infra.load_yaml(infra.GRPC_WORKSPACE)["load_from"]
    server = entry["grpc_server"]
    command = compose()["services"][server["host"]]["command"]
    assert server["port"] == int(command[command.index("-p") + 1])
    assert command[command.index("-h") + 1] == "0.0.0.0"


# --- Dagster instance of the deployments ----------------------------------------------------------------------

def test_deployment_dagster_yaml_is_a_valid_instance_config(monkeypatch, tmp_path):
    from payment_platform_tests.dagster_internals import dagster_instance_config

    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://user:pw@db:5432/dagster")
    (tmp_path / "dagster.yaml").write_text(infra.DEPLOY_DAGSTER_YAML.read_text())
    config, _ = dagster_instance_config(str(tmp_path))  # raises DagsterInvalidConfigError on a bad key
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_retries"]["enabled"] and config["run_monitoring"]["enabled"]
    assert "DAGSTER_POSTGRES_URL" in infra.dagster_yaml_env_vars(infra.DEPLOY_DAGSTER_YAML)


def test_deployment_dagster_yaml_rejects_an_unknown_setting(tmp_path):
    from dagster import DagsterInvalidConfigError
    from payment_platform_tests.dagster_internals import dagster_instance_config

    broken = infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)
    broken["run_monitoring"]["poll_intervall_seconds"] = 15
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(broken))
    with pytest.raises(DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


PROJECT_DAGSTER_YAML = infra.REPO / "dagster.yaml"


def test_deployment_run_monitoring_is_the_projects():
    """The deployment heals after a Dagster crash as fast as the project does: the same start timeout and poll
    interval as the project's dagster.yaml (chosen so healing takes under 90 s, issue 11)."""
    project = infra.load_yaml(PROJECT_DAGSTER_YAML)["run_monitoring"]
    deployed = infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)["run_monitoring"]
    assert deployed["enabled"] and project["enabled"]
    assert deployed["start_timeout_seconds"] == project["start_timeout_seconds"] == 45
    assert deployed["poll_interval_seconds"] == project["poll_interval_seconds"] == 5


def test_helm_run_monitoring_polls_as_often_as_the_project_and_never_times_out_sooner():
    """Kubernetes runs are pods of their own (a Dagster crash does not stop them): the chart checks them as often
    as the project, and gives a pod that waits for a node or an image at least the project's start timeout."""
    project = infra.load_yaml(PROJECT_DAGSTER_YAML)["run_monitoring"]
    helm = helm_values()["dagsterDaemon"]["runMonitoring"]
    assert helm["enabled"]
    assert helm["pollIntervalSeconds"] == project["poll_interval_seconds"]
    assert helm["startTimeoutSeconds"] >= project["start_timeout_seconds"]


def _ingestion_run(partition: int, run_id: str) -> dg.DagsterRun:
    """A run with exactly the tags the ingestion sensor gives the lease run of `partition`."""
    request = run_request(PlannedLease("payments", partition, 0, f"ingest:payments:{partition}:lease:{run_id}"),
                          PlannerSettings(), 120.0)
    return dg.DagsterRun(job_name="ingest_partition_lease_job", run_id=run_id, tags=request.tags)


def _tag_limits_from_helm() -> list[dict]:
    queued = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    return queued["tagConcurrencyLimits"]


def _tag_limits_from_dagster_yaml() -> list[dict]:
    return infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)["run_coordinator"]["config"]["tag_concurrency_limits"]


@pytest.mark.parametrize("limits_of", [_tag_limits_from_dagster_yaml, _tag_limits_from_helm],
                         ids=["compose dagster.yaml", "helm values"])
def test_run_queue_allows_a_lease_and_its_successor_per_partition_and_bounds_ingestion(limits_of):
    """Dagster's own tag-limit counter, fed the deployment's limits and runs tagged as the sensor tags them."""
    limits = limits_of()
    total = next(limit["limit"] for limit in limits if not isinstance(limit.get("value"), dict))
    in_progress = [_ingestion_run(0, "a")]
    counter = TagConcurrencyLimitsCounter(limits, in_progress)
    assert not counter.is_blocked(_ingestion_run(0, "b")), "the successor of partition 0's lease must not wait"
    counter = TagConcurrencyLimitsCounter(limits, [_ingestion_run(0, "a"), _ingestion_run(0, "b")])
    assert counter.is_blocked(_ingestion_run(0, "c")), "a third run of partition 0 must wait"
    assert not counter.is_blocked(_ingestion_run(1, "c")), "another partition's run must not wait"

    in_progress = [_ingestion_run(p % (total // 2), f"r{p}") for p in range(total)]
    counter = TagConcurrencyLimitsCounter(limits, in_progress)
    assert counter.is_blocked(_ingestion_run(total, "next")), f"more than {total} ingestion runs at once"
    assert not counter.is_blocked(dg.DagsterRun(job_name="consistency_checks_job", run_id="chk", tags={})), \
        "the ingestion limit must not hold back other jobs"


def test_run_queue_total_bound_leaves_room_for_other_jobs():
    dagster_yaml = infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)["run_coordinator"]["config"]
    queued = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    for max_runs, limits in ((dagster_yaml["max_concurrent_runs"], dagster_yaml["tag_concurrency_limits"]),
                             (queued["maxConcurrentRuns"], queued["tagConcurrencyLimits"])):
        ingestion_total = next(limit["limit"] for limit in limits if not isinstance(limit.get("value"), dict))
        assert 0 < ingestion_total < max_runs


# --- Kubernetes ---------------------------------------------------------------------------------------------

MANIFESTS = infra.k8s_manifests()


@pytest.mark.parametrize("version", infra.K8S_VERSIONS)
@pytest.mark.parametrize("manifest", [doc for _, doc in MANIFESTS],
                         ids=[f"{p.name}:{d['kind']}" for p, d in MANIFESTS])
def test_kubernetes_manifests_validate_against_the_api_schema(manifest, version):
    k8s_validate.validate(manifest, version, strict=True)  # raises ValidationError naming the field


def test_kubernetes_schema_rejects_a_broken_manifest():
    deployment = copy.deepcopy(next(doc for _, doc in MANIFESTS if doc["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapReff"] = {"name": "x"}
    with pytest.raises(k8s_validate.ValidationError):
        k8s_validate.validate(deployment, infra.K8S_VERSIONS[0], strict=True)


def test_api_deployment_runs_the_image_non_root_with_the_platform_environment():
    deployment = next(doc for _, doc in MANIFESTS if doc["kind"] == "Deployment")
    service = next(doc for _, doc in MANIFESTS if doc["kind"] == "Service")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith(PLATFORM_IMAGE)
    assert container["command"][:2] == ["payment-platform", "api"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # both probes ask the API's liveness path (no store, no token), on the port the API listens on
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == LIVENESS_PATH
        assert container[probe]["httpGet"]["port"] in ("http", container["ports"][0]["containerPort"])
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    port = int(container["command"][container["command"].index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port


# --- Helm ---------------------------------------------------------------------------------------------------

def test_helm_values_validate_against_the_vendored_chart_schema():
    errors = [f"{e.json_path}: {e.message}" for e in infra.helm_values_validator().iter_errors(helm_values())]
    assert errors == []


@pytest.mark.parametrize("breakage", ["unknown daemon key", "limit not a number", "probe field in k8s defs",
                                      "run launcher without its config"])
def test_helm_schema_rejects_broken_values(breakage):
    values = helm_values()
    if breakage == "unknown daemon key":
        values["dagsterDaemon"]["runMonitor"] = {"enabled": True}
    elif breakage == "limit not a number":
        _limits = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
        _limits["tagConcurrencyLimits"][0]["limit"] = "one"
    elif breakage == "probe field in k8s defs":  # resolved through the offline Kubernetes definitions
        values["dagster-user-deployments"]["deployments"][0]["podSecurityContext"]["runAsUser"] = "nobody"
    else:
        values["runLauncher"]["config"] = {}
    assert not infra.helm_values_validator().is_valid(values)


def test_helm_values_run_the_code_location_with_k8s_runs_queue_monitoring_and_retries():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"] == PLATFORM_IMAGE
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == code_location_module()
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    daemon = values["dagsterDaemon"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert daemon["runMonitoring"]["enabled"] and daemon["runRetries"]["enabled"]
    assert values["postgresql"]["enabled"] is False  # external Postgres
    assert values["postgresql"]["postgresqlDatabase"] == "dagster"


# --- the image ----------------------------------------------------------------------------------------------

def test_dockerfile_copies_only_files_that_exist_in_the_build_context():
    sources = infra.dockerfile_copy_sources()
    patterns = infra.dockerignore_patterns()
    assert "payment_platform" in sources and "pyproject.toml" in sources
    for source in sources:
        assert (infra.REPO / source).exists(), f"COPY {source}: no such file"
        assert not infra.excluded_by_dockerignore(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # what pyproject.toml needs to build the package is there too
    readme = tomllib.loads((infra.REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert readme in sources


def test_dockerignore_matcher_follows_docker_rules():
    patterns = ["**/__pycache__", ".venv", "infra", "!infra/keep.txt"]
    assert infra.excluded_by_dockerignore("payment_platform/lib/__pycache__/x.pyc", patterns)
    assert infra.excluded_by_dockerignore("__pycache__", patterns)
    assert infra.excluded_by_dockerignore(".venv/bin/python", patterns)
    assert infra.excluded_by_dockerignore("infra/dagster.yaml", patterns)
    assert not infra.excluded_by_dockerignore("infra/keep.txt", patterns)
    assert not infra.excluded_by_dockerignore("payment_platform/infra.py", patterns)


def test_dockerfile_pins_its_base_runs_non_root_and_serves_the_code_location_over_grpc():
    instructions = infra.dockerfile_instructions()
    (base,) = [i["value"] for i in instructions if i["instruction"] == "FROM"]
    # the base is a build argument (make image passes a Debian stand-in where no registry answers) whose default
    # is the official image, pinned
    assert base == "${BASE_IMAGE}"
    (default,) = [i["value"].split("=", 1)[1] for i in instructions
                  if i["instruction"] == "ARG" and i["value"].startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", default), f"base image not pinned to a version: {default}"
    users = [i["value"].strip() for i in instructions if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    (cmd,) = [i["value"] for i in instructions if i["instruction"] == "CMD"]
    command = json.loads(cmd)
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-m") + 1] == code_location_module()
    assert compose()["services"]["dagster-code"]["command"] == command
    installs = " ".join(i["value"] for i in instructions if i["instruction"] == "RUN")
    assert "pip install --no-deps ." in installs and "pip check" in installs


# --- environment variables ----------------------------------------------------------------------------------

def _helm_env_sources(values: dict) -> dict[str, list[str]]:
    """ConfigMap/Secret names each Helm-deployed process gets its environment from."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    return {
        "user deployment": [m["name"] for m in deployment["envConfigMaps"] + deployment["envSecrets"]],
        "run pods": [m["name"] for m in launcher["envConfigMaps"] + launcher["envSecrets"]],
    }


def _k8s_env_objects() -> dict[str, dict[str, str]]:
    objects = {}
    for _, doc in MANIFESTS:
        if doc["kind"] in ("ConfigMap", "Secret"):
            objects[doc["metadata"]["name"]] = {**doc.get("data", {}), **doc.get("stringData", {})}
    return objects


def _api_env_sources() -> list[str]:
    deployment = next(doc for _, doc in MANIFESTS if doc["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [next(iter(ref.values()))["name"] for ref in container["envFrom"]]


def _deployment_envs() -> dict[str, dict[str, str]]:
    """Every environment a deployment sets, by where it is set."""
    envs = {f"compose {name}": {k: str(v) for k, v in s.get("environment", {}).items()}
            for name, s in platform_services(compose()).items()}
    envs.update({f"k8s {name}": env for name, env in _k8s_env_objects().items()})
    envs["infra/platform.env"] = infra.env_file_vars(infra.PLATFORM_ENV_FILE)
    envs["Dockerfile ENV"] = {
        key: value for i in infra.dockerfile_instructions() if i["instruction"] == "ENV"
        for key, value in re.findall(r"(\w+)=(\S+)", i["value"])}
    values = helm_values()
    envs["helm env maps"] = {**values["dagsterWebserver"]["env"], **values["dagsterDaemon"]["env"]}
    return envs


def test_config_reads_every_setting_the_resources_need():
    assert infra.resource_env_vars() <= infra.config_env_vars()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "POSTGRES_DSN", "HBASE_HOST"} <= infra.resource_env_vars()


def test_deployments_set_only_settings_that_config_reads():
    known = infra.config_env_vars() | infra.NOT_PLATFORM_SETTINGS
    for where, env in _deployment_envs().items():
        unknown = set(env) - known
        assert not unknown, f"{where} sets {sorted(unknown)}, which payment_platform/config.py does not read"


def test_each_deployment_sets_every_required_setting():
    resources = infra.resource_env_vars()
    storage = infra.dagster_yaml_env_vars(infra.DEPLOY_DAGSTER_YAML)
    services = platform_services(compose())
    required = {"dagster-code": resources | storage, "dagster-webserver": storage, "dagster-daemon": storage,
                "api": resources | {TOKEN_SETTING}}
    for name, needed in required.items():
        missing = needed - set(services[name].get("environment", {}))
        assert not missing, f"compose {name} does not set {sorted(missing)}"

    objects = _k8s_env_objects()
    api = next(doc for _, doc in MANIFESTS if doc["kind"] == "Deployment")
    # replicas answer each other's page cursors only with one shared cursor key
    api_needs = resources | {TOKEN_SETTING} | ({CURSOR_KEY_SETTING} if api["spec"]["replicas"] > 1 else set())
    needs = {process: resources for process in _helm_env_sources(helm_values())} | {"api": api_needs}
    for process, names in {**_helm_env_sources(helm_values()), "api": _api_env_sources()}.items():
        assert all(n in objects for n in names), f"{process} refers to a ConfigMap/Secret not in infra/k8s"
        provided = set().union(*(objects[n] for n in names))
        missing = needs[process] - provided
        assert not missing, f"k8s {process} does not get {sorted(missing)}"

    missing = (resources | storage) - set(infra.env_file_vars(infra.PLATFORM_ENV_FILE))
    assert not missing, f"infra/platform.env does not set {sorted(missing)}"


def test_deployment_settings_pass_the_platform_validation():
    objects = _k8s_env_objects()
    k8s_env = set().union(*(objects[n].items() for n in _api_env_sources()))
    for where, env in {"compose dagster-code": compose()["services"]["dagster-code"]["environment"],
                       "k8s api": dict(k8s_env),
                       "infra/platform.env": infra.env_file_vars(infra.PLATFORM_ENV_FILE)}.items():
        try:
            endpoints = endpoints_from_env({k: str(v) for k, v in env.items()})
        except ConfigError as error:
            pytest.fail(f"{where}: {error}")
        assert endpoints.kafka and endpoints.postgres and endpoints.hbase and endpoints.mongo and endpoints.redis


def test_config_env_var_scan_finds_what_config_reads():
    """The scan itself: it must see both the ENV_VARS table and direct look-ups."""
    from payment_platform import config

    names = infra.config_env_vars()
    assert set(config.ENV_VARS) <= names
    assert "HBASE_PORT" in names and "PAYMENT_PLATFORM_DATA_DIR" in names
    assert {TOKEN_SETTING, CURSOR_KEY_SETTING} <= names  # the API's settings are in the one table too


def _platform_commands() -> dict[str, list[str]]:
    """Every `payment-platform ...` command line a deployment runs."""
    commands = {f"compose {name}": s["command"] for name, s in platform_services(compose()).items()
                if s["command"][0] == "payment-platform"}
    for path, doc in MANIFESTS:
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                commands[f"{path.name} {container['name']}"] = container["command"]
    return commands


def test_deployed_platform_commands_parse_with_the_real_cli():
    from payment_platform.cli import build_parser

    commands = _platform_commands()
    assert commands, "the API is deployed by compose and Kubernetes"
    for where, command in commands.items():
        assert command[0] == "payment-platform"
        try:
            args = build_parser().parse_args(command[1:])
        except SystemExit:
            pytest.fail(f"{where}: `{' '.join(command)}` is not a valid payment-platform command line")
        assert callable(args.func), where
        assert (args.host, int(args.port)) == ("0.0.0.0", 8000), f"{where} must listen beyond the container"


# --- scaling knobs ------------------------------------------------------------------------------------------

def _k8s_dagster_env() -> dict[str, str]:
    """What the code location and its run pods get from the ConfigMaps/Secrets the Helm values name."""
    objects = _k8s_env_objects()
    (names, *_) = _helm_env_sources(helm_values()).values()
    return {key: value for name in names for key, value in objects[name].items()}


def test_run_queue_limits_follow_the_scaling_knobs():
    """Dagster reads the run queue's limits from dagster.yaml / the Helm values only; they must be what the
    knobs the code location sees ask for (the same block `payment-platform scaling` prints)."""
    from payment_platform.config import scaling_from_env
    from payment_platform.scaling.run_limits import run_coordinator_limits

    compose_env = {k: str(v) for k, v in compose()["services"]["dagster-code"]["environment"].items()}
    expected = run_coordinator_limits(scaling_from_env(compose_env))
    config = infra.load_yaml(infra.DEPLOY_DAGSTER_YAML)["run_coordinator"]["config"]
    assert {key: config[key] for key in expected} == expected

    expected = run_coordinator_limits(scaling_from_env(_k8s_dagster_env()))
    queued = helm_values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert {"max_concurrent_runs": queued["maxConcurrentRuns"],
            "tag_concurrency_limits": queued["tagConcurrencyLimits"]} == expected


def test_every_process_of_a_deployment_uses_one_hbase_row_key_layout():
    """HBASE_SALT_BUCKETS is a property of the stored data: it is set explicitly, and to the same value, for
    every process that reads or writes HBase in a deployment (code location, run workers, API)."""
    setting = "HBASE_SALT_BUCKETS"
    services = platform_services(compose())
    layouts = {name: services[name]["environment"].get(setting) for name in ("dagster-code", "api")}
    layouts["infra/platform.env"] = infra.env_file_vars(infra.PLATFORM_ENV_FILE).get(setting)
    assert None not in layouts.values() and len(set(map(str, layouts.values()))) == 1, layouts

    objects = _k8s_env_objects()
    sources = {**_helm_env_sources(helm_values()), "api": _api_env_sources()}
    layouts = {process: {objects[n][setting] for n in names if setting in objects[n]}
               for process, names in sources.items()}
    assert all(len(v) == 1 for v in layouts.values()) and len(set().union(*layouts.values())) == 1, layouts


def test_scaling_knobs_of_every_deployment_are_valid():
    from payment_platform.config import scaling_from_env

    for env in _deployment_envs().values():
        scaling_from_env({k: str(v) for k, v in env.items()})  # raises ConfigError naming a bad knob
    for env in (_k8s_dagster_env(), compose()["services"]["dagster-code"]["environment"]):
        scaling = scaling_from_env({k: str(v) for k, v in env.items()})
        assert scaling.topic_partitions >= scaling.max_ranges_in_flight, "runs in flight beyond the partitions idle"
