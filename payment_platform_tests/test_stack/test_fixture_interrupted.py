"""The session `stack` fixture leaves no server behind when the pytest session is interrupted or killed."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devstack.stack.manager import remove_data_dir
from devstack.stack.services import SERVICES
from payment_platform_tests.test_stack.conftest import clean_env, wait_until_gone
from payment_platform_tests.waiting import wait_until

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

A_TEST_THAT_HOLDS_THE_STACK = textwrap.dedent("""
    import json, os, time
    from pathlib import Path

    def test_holds_the_stack(stack):
        Path(os.environ["PIDS_FILE"]).write_text(json.dumps({"pids": stack.pids(), "data_dir": str(stack.data_dir),
                                                            "cluster": os.path.realpath(stack.data_dir / "postgres")}))
        time.sleep(120)
""")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "sigterm", "sigkill"])
def test_an_interrupted_session_stops_the_stack(tmp_path, sig):
    (tmp_path / "test_holder.py").write_text(A_TEST_THAT_HOLDS_THE_STACK)
    pids_file = tmp_path / "pids.json"
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "payment_platform_tests.conftest", "-q", "-o", "addopts=",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_holder.py")],
        cwd=PROJECT, env=clean_env(PIDS_FILE=str(pids_file)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        # written in one call: read once it parses
        held = wait_until(lambda: json.loads(pids_file.read_text()), 90, "the held stack writing its pids",
                          every_s=0.2, retry_on=(OSError, ValueError),
                          give_up=lambda: session.poll() is not None and session.stdout.read().decode())
        pids = held["pids"]
        assert sorted(pids) == sorted(SERVICES)
        session.send_signal(sig)
        session.wait(60)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait()
    assert wait_until_gone(pids.values(), timeout=20) == []
    if sig != signal.SIGKILL:  # the fixture's teardown ran and removed its folder, and its cluster wherever it was
        assert not Path(held["data_dir"]).exists() and not Path(held["cluster"]).exists()
    remove_data_dir(Path(held["data_dir"]))  # a killed session cannot remove its folder (and cluster) itself
    assert not Path(held["cluster"]).exists()
