"""The one way tests wait: poll a condition until it holds, or fail saying what did not happen within how long."""
from __future__ import annotations

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
