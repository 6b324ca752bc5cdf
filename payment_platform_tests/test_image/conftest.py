"""The production image, built and run (`make image-test`, issue 21): fixtures shared by its modules.

Collected only when this folder (or a file in it) is named on pytest's command line: `make test` runs the
suite without it (it needs root, podman and a built image), `make image-test` runs it alone, after `make image`.
Figures measured along the way are printed at the end of the run."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from payment_platform_tests.test_image.engine import REPO, Engine, free_port, image_name

HERE = Path(__file__).resolve().parent
FIGURES = pytest.StashKey[dict]()
STACK_SERVICES = ("kafka", "postgres", "redis", "mongo", "hbase")
# what `stack env` prints that only makes sense on the host
HOST_ONLY_VARIABLES = {"PAYMENT_PLATFORM_DATA_DIR", "XDG_RUNTIME_DIR"}


def _named_on_command_line(config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    if collection_path.resolve() != HERE / "conftest.py" and not _named_on_command_line(config):
        return True
    return None


def pytest_configure(config):
    config.stash[FIGURES] = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(FIGURES, {})
    if figures:
        terminalreporter.section("image figures")
        for name, value in figures.items():
            terminalreporter.write_line(f"{name}: {value}")


@pytest.fixture(scope="session")
def figures(request) -> dict:
    return request.config.stash[FIGURES]


@pytest.fixture(scope="session")
def engine():
    engine = Engine.detect()
    version = engine("version", "--format", "{{.Client.Version}}", check=False)
    assert version.returncode == 0, f"{engine.command} does not answer: {version.stderr}"
    yield engine
    problems = engine.remove_all()
    assert not problems, f"could not remove everything the test made: {problems}"


@pytest.fixture(scope="session")
def image(engine, figures) -> str:
    """The image `make image` built (the test does not build it: `make image-test` does, first)."""
    name = image_name()
    details = engine.inspect_image(name)
    assert details is not None, f"no image {name}: build it with `make image` (make image-test does)"
    figures["image"] = f"{name}, {details['Size'] / 1e6:.0f} MB"
    return name


def _cli(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("payment-platform")), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _parse_exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export "):].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


class HostStack:
    """The embedded stack started by `payment-platform stack up` on free ports in a temporary data dir."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.env: dict[str, str] = {}

    def up(self) -> None:
        ports = [f"--port={service}={free_port()}" for service in STACK_SERVICES]
        done = _cli("stack", "up", "--data-dir", str(self.data_dir), "--timeout", "90", *ports)
        assert done.returncode == 0, f"stack up failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        exported = _cli("stack", "env", "--data-dir", str(self.data_dir))
        assert exported.returncode == 0, exported.stderr
        self.env = _parse_exports(exported.stdout)

    def down(self) -> str | None:
        done = _cli("stack", "down", "--data-dir", str(self.data_dir))
        return None if done.returncode == 0 else done.stderr

    @property
    def container_env(self) -> dict[str, str]:
        """The stores' settings for a container on the host network (the stack listens on 127.0.0.1), and lease runs
        that end a few seconds after their partition went quiet (the test waits for its runs to finish)."""
        return {**{k: v for k, v in self.env.items() if k not in HOST_ONLY_VARIABLES},
                "INGESTION_LEASE_IDLE_SECONDS": os.environ.get("INGESTION_LEASE_IDLE_SECONDS", "4")}


@pytest.fixture(scope="session")
def host_stack():
    """One embedded stack for the session (the compose run holds no payment; the deployment test counts its own
    1,000), stopped and its data removed at the end, also on failure."""
    data_dir = Path(tempfile.mkdtemp(prefix="pp-image-stack-"))
    stack = HostStack(data_dir)
    try:
        stack.up()
        yield stack
    finally:
        problem = stack.down()
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)
        assert problem is None, f"stack down failed: {problem}"
