"""Helpers for testing the stack manager itself: each test that needs its own stack starts (and stops) it."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from payment_platform.config import ENV_VARS
from devstack.stack.manager import remove_data_dir
from payment_platform_tests.waiting import WaitTimeout, wait_until

STACK_SETTINGS = set(ENV_VARS) | {"PAYMENT_PLATFORM_PORTS", "DAGSTER_HOME"}


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any setting that would point the stack elsewhere."""
    env = {key: value for key, value in os.environ.items() if key not in STACK_SETTINGS}
    env.update(extra)
    return env


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "payment_platform.cli", *args], env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def processes_under(folder: Path) -> list[psutil.Process]:
    """Live processes working in or named after `folder`: every service runs with its data dir as cwd."""
    folder = str(Path(folder).resolve())
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.cwd().startswith(folder) or any(folder in arg for arg in proc.cmdline()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def alive(pids) -> list[int]:
    return [pid for pid in pids if running(pid)]


def wait_until_gone(pids, timeout: float = 15.0) -> list[int]:
    """The pids still alive (not zombies) after waiting up to `timeout` seconds for them to end."""
    with contextlib.suppress(WaitTimeout):  # the caller asserts on (or kills) what is left
        wait_until(lambda: not alive(pids), timeout, "the processes ending")
    return alive(pids)


def clusters_owned_by(data_dir: Path) -> list[Path]:
    """The Postgres clusters kept outside `data_dir` for it (root, private folders) that still exist."""
    from devstack.stack.postgres_as_root import CLUSTER_ROOTS, OWNER_FILE

    return [record.parent for root in CLUSTER_ROOTS for record in root.glob(f"*/{OWNER_FILE}")
            if record.read_text().strip() == str(data_dir)]


def read_state(data_dir: Path) -> dict:
    return json.loads((data_dir / "stack.json").read_text())


@pytest.fixture
def data_dir():
    """A fresh data dir (not created yet); whatever a test leaves running in it is stopped (and reported)
    afterwards. Outside pytest's basetemp for the reason given in payment_platform_tests/conftest.py."""
    from payment_platform_tests.conftest import stack_data_dir

    parent = stack_data_dir("payment-platform-test-")
    folder = parent / "data"
    yield folder
    leftovers = []
    for proc in processes_under(folder):
        try:
            leftovers.append((proc.pid, proc.name()))
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    remove_data_dir(parent)  # and its Postgres cluster, kept outside it when the folder is private (root)
    assert not leftovers, f"processes left running in {folder}: {leftovers}"
