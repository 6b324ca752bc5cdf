import threading

import pytest

from payment_platform.lib.read_ahead import in_batches, read_ahead


def test_yields_every_item_in_order():
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_an_error_while_producing_reaches_the_caller_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ConnectionError("broker went away")

    seen = []
    with pytest.raises(ConnectionError, match="broker went away"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1, 2]


def test_stops_early_closes_the_producer_and_its_thread():
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    reader = read_ahead(endless(), depth=2, name="test-read-ahead")
    assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
    reader.close()
    assert closed.wait(5)
    assert not any(t.name == "test-read-ahead" for t in threading.enumerate())


def test_in_batches():
    assert list(in_batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(in_batches([], 3)) == []
