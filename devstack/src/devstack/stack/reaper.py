"""`python -m devstack.stack.reaper --grace S -- COMMAND...`: runs COMMAND and, when it ends or is told
to stop, leaves none of its descendants behind.

`dagster dev` starts the webserver, the daemon, code servers (`dagster code-server start`, which starts
`dagster api grpc`) and run workers. Stopped or killed, it does not always take them all with it: a code server
or a run worker can outlive it, reparented to init, out of reach of whoever started `dagster dev`. This process
is a child subreaper (PR_SET_CHILD_SUBREAPER): every orphan of the tree becomes its child instead of init's, so it
can find and kill them all. It dies with its launcher (PR_SET_PDEATHSIG, set by `processes.spawn`), so killing
`payment-platform up` with SIGKILL still ends the whole tree.

SIGTERM or SIGINT: forwarded to COMMAND, which gets `--grace` seconds to stop by itself; then whatever is left
of the tree gets SIGKILL. Exits with COMMAND's status.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import time

import psutil

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def reap() -> None:
    """Collects every exited child (orphans adopted from the tree included) so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(timeout_s: float = 5.0) -> int:
    """SIGKILL to every descendant until none is left (an orphan reparented meanwhile included); how many."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        living = [p for p in descendants() if _alive(p)]
        if not living:
            break
        for proc in living:
            try:
                proc.kill()
                killed.add(proc.pid)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.05)
        reap()
    reap()
    return len(killed)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run(command: list[str], grace_s: float) -> int:
    become_subreaper()
    stop_at: list[float] = []
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)
        if not stop_at:
            stop_at.append(time.monotonic() + grace_s)
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    child = subprocess.Popen(command)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    while child.poll() is None:
        if stop_at and time.monotonic() >= stop_at[0]:
            break
        time.sleep(0.1)
        reap_others(child)
    status = child.poll()  # before kill_tree reaps it
    killed = kill_tree()
    if killed:
        print(f"reaper: killed {killed} process(es) left of {' '.join(command[:2])}", file=sys.stderr, flush=True)
    if status is None:  # COMMAND outlived its grace: it ended as the signal that stopped it asked
        status = -received[0] if received else -signal.SIGKILL
    return status


def reap_others(child: subprocess.Popen) -> None:
    """Reaps adopted orphans that exited, never COMMAND itself (Popen must see its status). `waitid` with WNOWAIT
    names an exited child without collecting it: no walk over the process table (this runs ten times a second
    for as long as `up` runs)."""
    while True:
        try:
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is None or exited.si_pid == child.pid:
            return  # nothing exited, or COMMAND did: the caller's poll() collects it
        try:
            os.waitpid(exited.si_pid, 0)
        except ChildProcessError:
            pass


def command(target: list[str], grace_s: float) -> list[str]:
    """The command line that runs `target` under a reaper."""
    return [sys.executable, "-m", "devstack.stack.reaper", "--grace", str(grace_s), "--", *target]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reaper", description=__doc__.splitlines()[0])
    parser.add_argument("--grace", type=float, default=5.0, help="seconds COMMAND gets to stop after a signal")
    parser.add_argument("target", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    target = args.target[1:] if args.target[:1] == ["--"] else args.target
    if not target:
        parser.error("COMMAND is missing")
    status = run(target, args.grace)
    if status < 0:  # COMMAND died of a signal: die of the same one, so the launcher sees what COMMAND did
        if -status != signal.SIGKILL:
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    return status


if __name__ == "__main__":
    sys.exit(main())
