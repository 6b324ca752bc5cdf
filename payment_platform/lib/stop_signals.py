"""SIGINT and SIGTERM held for a command's whole life (the launchers of the stack, Dagster and the demo)."""
from __future__ import annotations

import signal
import threading


class StopSignals:
    """SIGINT and SIGTERM for a command's whole life, so no signal ever meets the default handler (which
    would kill the launcher before it stops its services). Until `wait()` is called a signal raises
    KeyboardInterrupt, so a half-started stack is cleaned up; from then on it is only recorded, so a second
    Ctrl+C cannot interrupt the shutdown."""

    def __init__(self):
        self._received: list[str] = []
        self._event = threading.Event()
        self._interrupting = True
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        self._received.append(name)
        self._event.set()
        if self._interrupting:
            raise KeyboardInterrupt(name)

    def stop_interrupting(self) -> None:
        """From now on a signal is only recorded: a shutdown under way is not cut short."""
        self._interrupting = False

    def wait(self, stop_when=None) -> str | None:
        """Blocks until SIGINT or SIGTERM (returns its name) or until `stop_when()` is true (returns None)."""
        self.stop_interrupting()
        while not self._event.wait(0.2):
            if stop_when is not None and stop_when():
                return None
        return self._received[0]
