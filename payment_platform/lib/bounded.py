"""Give up waiting for a call after a timeout: a hung socket never hangs the caller."""
from __future__ import annotations

import concurrent.futures
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class DidNotAnswer(TimeoutError):
    """The call did not return within its timeout (it may still be running in its daemon thread)."""


def bounded(fn: Callable[[], T], timeout_s: float, what: str = "call") -> T:
    """Run fn in a daemon thread and give up after timeout_s (a hung socket never hangs the caller)."""
    box: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        try:
            box.set_result(fn())
        except BaseException as error:  # noqa: BLE001 - handed to the caller
            box.set_exception(error)

    threading.Thread(target=target, name=f"bounded-{what}", daemon=True).start()
    try:
        return box.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise DidNotAnswer(f"{what} did not answer within {timeout_s:g}s") from None
