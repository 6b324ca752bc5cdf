"""Nothing `up` starts outlives it: the reaper in front of `dagster dev` kills every descendant, however it was
started (its own session, an orphan reparented by a double fork), and `stack down` finds what escaped anyway."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

from devstack.stack import processes, reaper
from payment_platform_tests.test_stack.conftest import cli, clean_env, wait_until_gone
from payment_platform_tests.waiting import wait_until

# A stand-in for `dagster dev`: a child in a session of its own (a code server) and an orphan (a run worker whose
# parent is gone), each writing its pid to a file; it ignores SIGTERM, as a slow shutdown does.
TREE = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    folder = sys.argv[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import os, time; open(os.path.join(%r, 'session'), 'w').write(str(os.getpid())); time.sleep(600)" % folder],
                     start_new_session=True)
    if os.fork() == 0:
        if os.fork() == 0:
            open(os.path.join(folder, "orphan"), "w").write(str(os.getpid()))
            time.sleep(600)
        os._exit(0)
    open(os.path.join(folder, "ready"), "w").write("1")
    time.sleep(600)
""")


def _start(folder: Path, launcher: list[str]) -> subprocess.Popen:
    script = folder / "tree.py"
    script.write_text(TREE)
    return subprocess.Popen([*launcher, *reaper.command([sys.executable, str(script), str(folder)], 1.0)],
                            env=clean_env(), start_new_session=True)


def _pids(folder: Path, timeout: float = 30.0) -> list[int]:
    def written() -> list[int] | None:  # each file holds its pid once it parses
        return (folder / "ready").exists() and [int((folder / name).read_text()) for name in ("session", "orphan")]

    return wait_until(written, timeout, "the process tree starting", every_s=0.05, retry_on=(OSError, ValueError))


def test_a_stop_signal_ends_the_whole_tree_after_the_grace(tmp_path):
    top = _start(tmp_path, [])
    session, orphan = _pids(tmp_path)
    assert psutil.Process(orphan).ppid() == top.pid  # the orphan was adopted by the reaper, not by init
    top.send_signal(signal.SIGTERM)
    top.wait(timeout=30)
    assert top.returncode == -signal.SIGTERM  # the command ignored SIGTERM and was ended as it asked
    assert wait_until_gone([session, orphan]) == []


def test_an_orphan_that_exits_is_collected_and_the_command_keeps_its_status(tmp_path):
    """An adopted orphan that exits is reaped while COMMAND runs (no zombie piles up over days), and COMMAND's own
    exit status still reaches the reaper's caller."""
    top = subprocess.Popen(reaper.command(["sh", "-c", "(sleep 0.2 &); sleep 3; exit 7"], 1.0), env=clean_env())
    wait_until(lambda: any(p.name() == "sleep" for p in psutil.Process(top.pid).children(recursive=True)), 30,
               "the command starting", every_s=0.05, retry_on=(psutil.Error,))
    time.sleep(1.0)  # the orphan (`sleep 0.2`, adopted by the reaper) has exited by now

    def orphan_collected() -> bool:
        adopted = [p for p in psutil.Process(top.pid).children() if p.name() != "sh"]
        return not adopted  # the exited orphan, adopted by the reaper, is gone: not left a zombie

    wait_until(orphan_collected, 30, "the exited orphan collected", every_s=0.1, retry_on=(psutil.Error,))
    assert top.wait(timeout=30) == 7


def test_killing_the_launcher_outright_ends_the_whole_tree(tmp_path):
    # The launcher spawns the reaper as `up` does (dies with its parent); then the launcher is SIGKILLed.
    launcher = tmp_path / "launcher.py"
    launcher.write_text(textwrap.dedent("""
        import signal, sys, time
        from pathlib import Path
        from devstack.stack import processes
        processes.spawn(sys.argv[1:], Path(sys.argv[0]).with_name("reaper.log"), die_with_parent=True,
                        death_signal=signal.SIGTERM)
        time.sleep(600)
    """))
    top = _start(tmp_path, [sys.executable, str(launcher)])
    session, orphan = _pids(tmp_path)
    os.kill(top.pid, signal.SIGKILL)
    top.wait(timeout=10)
    assert wait_until_gone([session, orphan], timeout=30) == []


def test_stack_down_stops_what_up_left_behind(tmp_path):
    data_dir = (tmp_path / "data").absolute()
    data_dir.mkdir()
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True,
                                env=clean_env(**{processes.UP_MARK: str(data_dir)}))
    try:
        assert [p.pid for p in processes.marked(processes.UP_MARK, str(data_dir))] == [leftover.pid]
        done = cli("stack", "down", "--data-dir", str(data_dir))
        assert done.returncode == 0, done.stderr
        assert "stopped 1 process(es) left by `payment-platform up`" in done.stdout
        leftover.wait(timeout=10)
        assert processes.marked(processes.UP_MARK, str(data_dir)) == []
    finally:
        if leftover.poll() is None:
            leftover.kill()
