"""lib.bounded: a call's result or error comes back as is; a call that hangs gives up after its timeout."""
import threading
import time

import pytest

from payment_platform.lib.bounded import DidNotAnswer, bounded


def test_the_result_and_the_error_come_back_as_they_are():
    assert bounded(lambda: 42, 1.0) == 42
    with pytest.raises(KeyError, match="gone"):
        bounded(lambda: {}["gone"], 1.0)


def test_a_hung_call_gives_up_after_its_timeout_naming_it():
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(DidNotAnswer, match="kafka end offsets did not answer within 0.2s"):
        bounded(release.wait, 0.2, "kafka end offsets")
    assert time.monotonic() - started < 2
    release.set()
