"""The lease run's checks thread: one round at a time, batches landing meanwhile wait for the next round, and a
round's outcome is handed back whole (pure: a stand-in round of checks)."""
from __future__ import annotations

import threading

from payment_platform.defs.ingestion.lease_job import BackgroundChecks


def test_one_round_at_a_time_and_its_outcome_comes_back_whole():
    release = threading.Event()
    rounds: list[list] = []

    def work(batches):
        rounds.append(list(batches))
        release.wait(10)
        return [f"checked {len(batches)}"], ["a warning"]

    checks = BackgroundChecks(work)
    try:
        assert checks.finished() is None and not checks.busy
        checks.start(["b1", "b2"])
        assert checks.busy and checks.finished() is None  # still running: nothing yet, nothing lost
        release.set()
        done = checks.finished(wait=True)
        assert done.batches == ["b1", "b2"] and done.evaluations == ["checked 2"] and done.warnings == ["a warning"]
        assert not checks.busy and checks.finished() is None  # handed back once
        checks.start(["b3"])
        assert checks.finished(wait=True).evaluations == ["checked 1"]
        assert rounds == [["b1", "b2"], ["b3"]]
    finally:
        checks.close()
