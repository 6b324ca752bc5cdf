"""infra/docker-compose.yml itself, run with podman-compose from the built image: the Dagster services and the
API as written, each health check as written (only the ports differ: this machine is shared, so each process
gets a free one), `depends_on` as written. Store images cannot be pulled here, so an override file stands each
store service in with a container of the project's image whose health check probes the host's embedded store
(`payment-platform stack up`), and points the platform's settings at those stores (host network)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from payment_platform_tests.test_image.engine import free_port, wait_for
from payment_platform_tests.test_infra import infra_files as infra

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(900)]

STORES = {"kafka": "KAFKA_BOOTSTRAP_SERVERS", "postgres": "POSTGRES_DSN", "redis": "REDIS_URL",
          "mongo": "MONGO_URI", "hbase": "HBASE_PORT"}
PLATFORM = ("dagster-code", "dagster-webserver", "dagster-daemon", "api")
HEALTHY_TIMEOUT_S = 300
# what the compose file listens on, replaced by free ports in commands and health checks alike
COMPOSE_PORTS = {"dagster-code": 4000, "dagster-webserver": 3000, "api": 8000}


def _tagged(tag: str, value) -> tuple:
    """A value written with one of compose's merge tags (!override, !reset) by OverrideDumper."""
    return (tag, value)


class OverrideDumper(yaml.SafeDumper):
    pass


def _represent_tuple(dumper, data):
    tag, value = data
    if isinstance(value, dict):
        return dumper.represent_mapping(tag, value)
    if isinstance(value, list):
        return dumper.represent_sequence(tag, value)
    return dumper.represent_scalar(tag, "" if value is None else str(value))


OverrideDumper.add_representer(tuple, _represent_tuple)


def _port_of(setting: str, value: str) -> int:
    from urllib.parse import urlparse

    if setting == "KAFKA_BOOTSTRAP_SERVERS":
        return int(value.split(",")[0].rsplit(":", 1)[1])
    if setting == "HBASE_PORT":
        return int(value)
    return urlparse(value).port


def _with_ports(words: list[str], ports: dict[int, int]) -> list[str]:
    """Every occurrence of a compose port in a command or health check, replaced by the free one."""
    out = []
    for word in words:
        for old, new in ports.items():
            word = str(new) if word == str(old) else word.replace(f"localhost:{old}", f"localhost:{new}")
        out.append(word)
    return out


def build_override(image: str, stack_env: dict[str, str], workspace: Path, ports: dict[str, int]) -> dict:
    spec = infra.load_compose()
    services = {}
    for store, setting in STORES.items():
        port = _port_of(setting, stack_env[setting])
        services[store] = {  # (their environment is left as written: unused by `sleep`)
            "image": image, "command": ["sleep", "infinity"], "network_mode": "host",
            "healthcheck": {"test": _tagged("!override", [
                "CMD", "python", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 3).close()"]),
                "interval": "2s", "retries": 60},
        }
        # podman-compose keeps a merge tag on a key the file lacks: tag only what the service has
        services[store].update({key: _tagged("!reset", []) for key in ("volumes", "ports")
                                if key in spec["services"][store]})
    replaced = {COMPOSE_PORTS[name]: ports[name] for name in COMPOSE_PORTS}
    for name in PLATFORM:
        service = spec["services"][name]
        override = {"network_mode": "host", "extra_hosts": ["dagster-code:127.0.0.1"]}
        if "ports" in service:
            override["ports"] = _tagged("!reset", [])
        command = _with_ports(service["command"], replaced)
        if "-h" in command:
            command[command.index("-h") + 1] = "127.0.0.1"
        if "--host" in command:
            command[command.index("--host") + 1] = "127.0.0.1"
        override["command"] = command  # a command replaces the file's as it is
        override["healthcheck"] = {"test": _tagged("!override", _with_ports(service["healthcheck"]["test"], replaced))}
        env = {key: stack_env[key] for key in service.get("environment", {}) if key in stack_env}
        override["environment"] = env
        volumes = [v for v in service.get("volumes", []) if not v.startswith("./workspace.grpc.yaml:")]
        if any(v.startswith("./workspace.grpc.yaml:") for v in service.get("volumes", [])):
            volumes.append(f"{workspace}:/opt/dagster/dagster_home/workspace.yaml:ro")
        override["volumes"] = _tagged("!override", [v.replace("./", f"{infra.INFRA}/", 1) if v.startswith("./") else v
                                                    for v in volumes])
        services[name] = override
    return {"services": services}


def podman_compose(args: list[str], files: list[Path], project: str, env: dict, timeout: float = 600
                   ) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "podman_compose", "-p", project]
    for f in files:
        command += ["-f", str(f)]
    return subprocess.run(command + args, cwd=infra.INFRA, env=env, capture_output=True, text=True, timeout=timeout)


def _containers(engine, project: str) -> dict[str, dict]:
    listed = json.loads(engine("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                               "--format", "json").stdout or "[]")
    return {c["Labels"]["com.docker.compose.service"]: c for c in listed}


def _inspect(engine, name: str) -> dict:
    return json.loads(engine("inspect", name).stdout)[0]


@pytest.fixture(scope="module")
def compose_project(engine, image, host_stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("compose")
    folder.chmod(0o755)
    ports = {name: free_port() for name in COMPOSE_PORTS}
    workspace = yaml.safe_load((infra.INFRA / "workspace.grpc.yaml").read_text())
    workspace["load_from"][0]["grpc_server"]["port"] = ports["dagster-code"]  # host dagster-code: extra_hosts
    (folder / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    (folder / "workspace.yaml").chmod(0o644)
    override = folder / "override.yml"
    override.write_text(yaml.dump(build_override(image, host_stack.container_env, folder / "workspace.yaml", ports),
                                  Dumper=OverrideDumper, sort_keys=False))
    project = f"{engine.prefix}-compose"
    env = {**engine.env, "POSTGRES_PASSWORD": "unused-the-host-stack-trusts-local-connections"}
    files = [infra.COMPOSE_FILE, override]
    volumes_before = set(engine("volume", "ls", "-q").stdout.split())
    began = time.monotonic()
    try:
        up = podman_compose(["up", "-d", *PLATFORM], files, project, env)
        assert up.returncode == 0, f"podman-compose up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield {"project": project, "ports": ports, "files": files, "env": env, "began": began, "up": up}
    finally:
        # first the containers with their anonymous volumes (the image's VOLUME: `down -v` keeps those), then
        # compose's own named volumes
        for name in (c["Names"][0] for c in _containers(engine, project).values()):
            engine("rm", "-f", "-v", "-t", "5", name, check=False, timeout=60)
        down = podman_compose(["down", "-v", "-t", "5"], files, project, env)
        # podman-compose's containers leave anonymous volumes behind even so: those made during this run go too
        for volume in set(engine("volume", "ls", "-q").stdout.split()) - volumes_before:
            if engine("volume", "inspect", "--format", "{{.Anonymous}}", volume, check=False).stdout.strip() == "true":
                engine("volume", "rm", volume, check=False)
        left = _containers(engine, project)
        assert down.returncode == 0 and not left, f"podman-compose down left {list(left)}:\n{down.stderr[-2000:]}"


def test_compose_refuses_to_start_without_the_database_password(engine):
    env = {k: v for k, v in engine.env.items() if k != "POSTGRES_PASSWORD"}
    done = podman_compose(["config"], [infra.COMPOSE_FILE], "pp-password-check", env, timeout=120)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stdout + done.stderr


def test_every_health_check_turns_healthy(engine, compose_project, figures):
    """Podman 4.3 (Debian bookworm) runs health checks from systemd timers, absent here: each check, exactly as
    the container was created with it, is run with `podman healthcheck run` until it passes."""
    containers = _containers(engine, compose_project["project"])
    assert set(PLATFORM) | set(STORES) <= set(containers), sorted(containers)
    pending = {service: c["Names"][0] for service, c in containers.items()}

    def all_healthy():
        for service, name in list(pending.items()):
            state = _inspect(engine, name)["State"]
            assert state["Running"], f"{service} stopped (exit {state.get('ExitCode')}):\n" \
                                     f"{engine('logs', '--tail', '40', name, check=False).stderr[-3000:]}"
            if engine("healthcheck", "run", name, check=False, timeout=60).returncode == 0:
                del pending[service]
        return not pending

    assert wait_for(all_healthy, HEALTHY_TIMEOUT_S, 2.0), f"never healthy: {sorted(pending)}"
    figures["compose up -> every health check healthy"] = f"{time.monotonic() - compose_project['began']:.1f} s"
    for service, c in containers.items():
        health = _inspect(engine, c["Names"][0])["State"].get("Health") or \
            _inspect(engine, c["Names"][0])["State"].get("Healthcheck")
        assert health and health["Status"] == "healthy", (service, health)


def test_services_started_in_the_order_depends_on_gives(engine, compose_project):
    spec = infra.load_compose()["services"]
    containers = _containers(engine, compose_project["project"])
    started = {service: _inspect(engine, c["Names"][0])["State"]["StartedAt"] for service, c in containers.items()}
    from datetime import datetime

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text.split(".")[0] if "." in text else text[:19])

    for service in PLATFORM:
        for dependency in spec[service].get("depends_on", {}):
            assert moment(started[dependency]) <= moment(started[service]), \
                f"{service} started at {started[service]}, before its dependency {dependency} ({started[dependency]})"


def test_compose_deployment_serves_the_ui_and_the_api(compose_project):
    import urllib.request

    ports = compose_project["ports"]
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['dagster-webserver']}/server_info", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['api']}/livez", timeout=10) as r:
        assert r.status == 200
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports['dagster-webserver']}/graphql",
        data=json.dumps({"query": "{ workspaceOrError { ... on Workspace { locationEntries { name "
                                  "locationOrLoadError { __typename } } } } }"}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        entries = json.loads(r.read())["data"]["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["locationOrLoadError"]["__typename"]) for e in entries] == \
        [("payment_platform", "RepositoryLocation")]

