"""`HeldMessages`: the range checks of a lease read the batches it landed from memory, and anything it does not
hold whole and contiguous from the broker (pure: a stand-in broker)."""
from __future__ import annotations

from payment_platform.stores.kafka import HeldMessages, KafkaMessage


def message(offset: int) -> KafkaMessage:
    return KafkaMessage(0, offset, None, f'{{"n": {offset}}}'.encode(), {}, 0)


class Broker:
    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def read_range(self, partition, start, end, batch=2000, stall_timeout_s=15.0, topic=None):
        self.asked.append((topic, partition, start, end))
        yield [message(o) for o in range(start, end)]


def test_a_held_contiguous_range_is_served_from_memory_in_chunks():
    broker = Broker()
    held = HeldMessages(broker, "payments")
    held.hold("payments", 0, 10, 15, [message(o) for o in range(10, 15)])
    chunks = list(held.read_range(0, 10, 15, batch=2, topic="payments"))
    assert [[m.offset for m in c] for c in chunks] == [[10, 11], [12, 13], [14]]
    assert broker.asked == [] and (held.served_from_memory, held.read_from_broker) == (1, 0)


def test_a_range_with_a_gap_or_not_held_is_read_from_the_broker():
    broker = Broker()
    held = HeldMessages(broker, "payments")
    held.hold("payments", 0, 0, 4, [message(0), message(1), message(3)])  # offset 2 missing: not trusted
    assert [m.offset for c in held.read_range(0, 0, 4, topic="payments") for m in c] == [0, 1, 2, 3]
    assert [m.offset for c in held.read_range(0, 4, 6) for m in c] == [4, 5]  # never held; default topic
    assert broker.asked == [("payments", 0, 0, 4), (None, 0, 4, 6)]
    assert (held.served_from_memory, held.read_from_broker) == (0, 2)
