"""fewer_collections: raises the gen-0 threshold while held, restores it after the last holder, on errors too."""
from __future__ import annotations

import gc
import threading

import pytest

from payment_platform.lib.collections_pause import fewer_collections


@pytest.fixture(autouse=True)
def known_thresholds():
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_raises_gen0_only_and_restores():
    with fewer_collections(gen0=50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_never_lowers_a_higher_threshold():
    gc.set_threshold(200_000, 10, 10)
    with fewer_collections(gen0=50_000):
        assert gc.get_threshold()[0] == 200_000
    assert gc.get_threshold() == (200_000, 10, 10)


def test_nested_and_failing_uses_restore_after_the_outermost():
    with pytest.raises(RuntimeError):
        with fewer_collections():
            with fewer_collections():
                pass
            assert gc.get_threshold()[0] == 100_000  # the inner exit left the outer in force
            raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_overlapping_threads_restore_once_both_are_done():
    first_in, second_done = threading.Event(), threading.Event()
    seen = {}

    def first():
        with fewer_collections():
            first_in.set()
            second_done.wait(5)
            seen["first, after the second left"] = gc.get_threshold()[0]

    worker = threading.Thread(target=first)
    worker.start()
    assert first_in.wait(5)
    with fewer_collections():
        pass
    second_done.set()
    worker.join(5)
    assert seen["first, after the second left"] == 100_000
    assert gc.get_threshold() == (700, 10, 10)
