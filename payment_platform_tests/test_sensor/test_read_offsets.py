"""The sensor's reads of one tick: progress before the end offsets. Lease runs land batches between the two reads;
progress read after the end offsets could be past them, which looked like offsets going backwards (a broker
reset) and started a partition over from its first offset (found in the hour-long soak at 300 payments/s).
Pure: a stand-in topic that publishes and lands between any two reads."""
from __future__ import annotations

from payment_platform.defs.ingestion.sensors import read_offsets
from payment_platform.ingestion.planner import CursorState, backwards_partitions


class Flowing:
    """Publishes 5 messages and lands them (but the last) before answering any read: progress < end at every
    instant, and each later read sees both moved on."""

    topic, bootstrap_servers = "payments", "stand-in"

    def __init__(self) -> None:
        self.published = 100

    def _flow(self) -> None:
        self.published += 5

    def end_offsets(self) -> dict[int, int]:
        self._flow()
        return {0: self.published}

    def topic_id(self) -> str:
        self._flow()
        return "topic-id"

    def beginning_offsets(self) -> dict[int, int]:
        return {0: 0}

    def read_progress(self, topic: str) -> dict[int, int]:
        self._flow()
        return {0: self.published - 1}

    def ensure_schema(self) -> None:
        pass


def test_progress_read_in_a_tick_is_never_past_the_end_offsets_read_in_it():
    flowing = Flowing()
    cursor = CursorState(topic="payments", topic_id="topic-id", end_offsets={0: 100})
    end_offsets, topic_id, progress, _ = read_offsets(flowing, flowing, cursor, timeout_s=1.0)
    assert progress[0] <= end_offsets[0]
    assert backwards_partitions(cursor, "payments", end_offsets, progress, topic_id) == []
