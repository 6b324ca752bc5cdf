"""The container engine as the image test drives it: Podman (or Docker) through its command line, with the
repository's containers.conf, every container on the host network and removed at the end."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "infra" / "image"
T = TypeVar("T")


def project_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def image_name() -> str:
    """The tag `make image` builds (infra/image/engine.sh): what compose, Helm and the manifests name."""
    return os.environ.get("IMAGE") or f"payment-platform:{project_version()}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(probe: Callable[[], T | None], timeout_s: float, interval_s: float = 1.0,
             alive: Callable[[], str | None] | None = None) -> T | None:
    """probe() until it returns something truthy (returned) or timeout_s passes (None). alive() returning a
    text means whatever we wait on died: raised at once with that text instead of waiting out the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result:
            return result
        if alive is not None and (death := alive()):
            raise AssertionError(death)
        if time.monotonic() > deadline:
            return None
        time.sleep(interval_s)


class EngineError(AssertionError):
    pass


@dataclass
class Engine:
    """podman (default when installed) or docker; CONTAINER_ENGINE chooses."""

    command: str
    env: dict[str, str]
    prefix: str = field(default_factory=lambda: f"pp-image-test-{uuid.uuid4().hex[:6]}")
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    @classmethod
    def detect(cls) -> "Engine":
        chosen = os.environ.get("CONTAINER_ENGINE") or ("podman" if shutil.which("podman") else "docker")
        env = dict(os.environ)
        if chosen == "podman":
            env.setdefault("CONTAINERS_CONF", str(IMAGE_DIR / "containers.conf"))
        return cls(chosen, env)

    def __call__(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run([self.command, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise EngineError(f"{self.command} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done

    def inspect_image(self, image: str) -> dict | None:
        done = self("image", "inspect", image, check=False)
        return json.loads(done.stdout)[0] if done.returncode == 0 else None

    def volume(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        self("volume", "create", full)
        self.volumes.append(full)
        return full

    def run(self, name: str, image: str, command: list[str], *, env: dict[str, str] | None = None,
            mounts: list[str] = (), extra: list[str] = ()) -> "Container":
        """Starts a detached container on the host network, as the image's own user (no --user)."""
        full = f"{self.prefix}-{name}"
        args = ["run", "-d", "--name", full, "--network=host", *extra]
        for key, value in (env or {}).items():
            args += ["--env", f"{key}={value}"]
        for mount in mounts:
            args += ["--volume", mount]
        self.containers.append(full)
        self(*args, image, *command)
        return Container(self, full)

    def remove_all(self) -> list[str]:
        """Every container and volume this engine object made: removed, whatever state they are in."""
        problems = []
        for name in reversed(self.containers):
            done = self("rm", "-f", "-v", "-t", "5", name, check=False, timeout=60)
            if done.returncode != 0 and "no such container" not in done.stderr.lower():
                problems.append(done.stderr.strip())
        for name in self.volumes:
            done = self("volume", "rm", "-f", name, check=False, timeout=60)
            if done.returncode != 0 and "no such volume" not in done.stderr.lower():
                problems.append(done.stderr.strip())
        self.containers.clear()
        self.volumes.clear()
        return problems


@dataclass
class Container:
    engine: Engine
    name: str

    def state(self) -> dict:
        done = self.engine("inspect", "--format", "{{json .State}}", self.name, check=False)
        return json.loads(done.stdout) if done.returncode == 0 else {}

    def logs(self, tail: int = 60) -> str:
        done = self.engine("logs", "--tail", str(tail), self.name, check=False)
        return (done.stdout + done.stderr)[-6000:]

    def died(self) -> str | None:
        """None while running; otherwise what a person needs to see: its exit code and the end of its log."""
        state = self.state()
        if state.get("Running"):
            return None
        return f"container {self.name} is not running ({state.get('Status')}, exit {state.get('ExitCode')}):\n" \
               f"{self.logs()}"

    def exec(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.engine("exec", self.name, *command, check=False, timeout=timeout)
