"""Managed child processes: started in their own session, found again by pid, stopped with their whole tree.

A service is started with `start_new_session=True`, so a Ctrl+C in the terminal reaches only the
launcher, which then stops the services deliberately. A launcher that owns its services (the test
fixture, a foreground `up`) also asks the kernel to signal them if the launcher itself dies
(PR_SET_PDEATHSIG): no orphans even after a SIGKILL.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with(parent_pid: int, death_signal: int):
    """A preexec_fn: the child gets `death_signal` when the process that started it exits."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os.kill(os.getpid(), death_signal)

    return preexec


def as_user(user: str | None) -> dict:
    """Popen arguments that drop to `user` completely: its own group and no supplementary (root) groups."""
    if user is None:
        return {}
    import pwd

    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def spawn(command: list[str], log_path: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None,
          user: str | None = None, die_with_parent: bool = False,
          death_signal: int = signal.SIGTERM) -> subprocess.Popen:
    """Starts `command` detached from the terminal, stdout and stderr appended to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
            start_new_session=True, **as_user(user),
            preexec_fn=_die_with(os.getpid(), death_signal) if die_with_parent else None,
        )


@dataclass(frozen=True)
class ProcessRef:
    """A process recorded in the state file; the start time tells a reused pid from ours."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> "ProcessRef":
        return cls(pid, psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The live process, or None if it exited (a zombie counts as exited) or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.NoSuchProcess:
            return None

    def alive(self) -> bool:
        return self.process() is not None


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The process, its descendants, and whatever else is still in its process group."""
    members = {proc.pid: proc}
    try:
        for child in proc.children(recursive=True):
            members[child.pid] = child
    except psutil.NoSuchProcess:
        pass
    for other in group_members(proc.pid):
        members.setdefault(other.pid, other)
    return list(members.values())


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes whose process group is `pgid` (a service started its own session and group)."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return _living(members)


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _living(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def stop(ref: ProcessRef, stop_signal: int = signal.SIGTERM, timeout: float = 10.0,
         popen: subprocess.Popen | None = None) -> None:
    """Signals the process, waits for it and its tree to exit, then kills whatever is left."""
    if popen is not None:
        popen.poll()
    proc = ref.process()
    if proc is None and psutil.pid_exists(ref.pid) and not _is_zombie(ref.pid):
        return  # the pid belongs to another process now; Linux never reuses a pid while its group lives
    # The leader may be gone while what it started lives on in its process group: stop those too.
    members = tree(proc) if proc is not None else group_members(ref.pid)
    for member in [proc] if proc is not None else members:
        try:
            member.send_signal(stop_signal)
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            popen.poll()  # reap our own child so it does not linger as a zombie
        if not _living(members) and not group_members(ref.pid):
            return
        time.sleep(0.05)
    for leftover in _living(members) + group_members(ref.pid):
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(members, timeout=5)
    if popen is not None:
        popen.poll()


UP_MARK = "PAYMENT_PLATFORM_UP_OF"  # in the environment of every process `up` starts: its data dir


def marked(mark: str, value: str) -> list[psutil.Process]:
    """This user's live processes whose environment holds mark=value (inherited by everything they start)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(mark) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def stop_marked(mark: str, value: str, timeout: float = 5.0) -> int:
    """SIGTERM to every process marked mark=value, SIGKILL to those left after `timeout`; how many there were."""
    found = marked(mark, value)
    for proc in found:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(found, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=2)
    return len(found)
