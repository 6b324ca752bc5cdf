"""The one way tests wait: poll a condition until it holds, or fail saying what did not happen within how long."""
from __future__ import annotations

import socket
import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """What a test waited for did not happen in time."""


def wait_until(condition: Callable[[], T], timeout_s: float, what: str, every_s: float = 0.1, *,
               detail: Callable[[], str] | None = None,
               retry_on: tuple[type[BaseException], ...] = (),
               give_up: Callable[[], str | None] | None = None) -> T:
    """Calls `condition` every `every_s` seconds until it returns a truthy value, and returns that value.

    An exception of a type in `retry_on` counts as "not yet" (a server still starting); any other propagates.
    After `timeout_s` it fails with WaitTimeout: "<what> did not happen within N s", the last value or error
    `condition` gave, and `detail()` (a log tail, say) when given. `give_up()`, asked before each try, ends the
    wait at once with the same failure when it returns a reason (the server being waited for has exited).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        reason = give_up() if give_up is not None else None
        if reason:
            raise WaitTimeout(_message(f"{what} did not happen: {reason}", detail))
        try:
            value = condition()
            last = f"last result: {value!r}"
        except retry_on as error:
            value, last = None, f"last error: {type(error).__name__}: {error}"
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(_message(f"{what} did not happen within {timeout_s:g} s ({last})", detail))
        time.sleep(every_s)


def _message(said: str, detail: Callable[[], str] | None) -> str:
    return said + (f"\n{detail()}" if detail is not None else "")


def watching(daemon) -> dict:
    """wait_until's arguments that end a wait at once when this dagster-daemon (devstack's DagsterDaemon) has
    exited, and add its log's tail to a failure."""
    return {"give_up": daemon.check, "detail": lambda: f"daemon log: {daemon.log_tail()}"}


LOCATIONS_QUERY = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                   "locationOrLoadError { __typename ... on PythonError { message } } } } } }")


def wait_for_location(query: Callable[[str], dict], process, timeout_s: float) -> dict[str, dict]:
    """Waits until the Dagster UI that `query` (GraphQL text -> the answer's data) talks to has loaded every code
    location; returns them by name. Fails at once if `process` (the `payment-platform up` serving it) exits."""

    def loaded():
        entries = query(LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
        return entries and all(e["loadStatus"] == "LOADED" for e in entries) and {e["name"]: e for e in entries}

    return wait_until(loaded, timeout_s, "the Dagster UI loading its code location", every_s=1.0, retry_on=(OSError,),
                      give_up=lambda: process.poll() is not None and "payment-platform up exited early")


def accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a TCP connection to host:port is accepted now (a condition for wait_until)."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False
