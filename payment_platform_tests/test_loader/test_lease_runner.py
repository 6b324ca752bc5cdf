"""The lease loop's own logic, against the real broker with a stand-in loader: batches follow the backlog, a batch
that cannot settle is tried again smaller from the recorded progress, and a batch that keeps failing ends the lease
naming the partition, the offset and the error; a lease whose session is lost stops at once."""
from __future__ import annotations

import uuid

import pytest

from payment_platform.ingestion.lease import BatchFailed, LandedBatch, LeaseEnd, LeaseError, LeaseRunner, LeaseSettings
from payment_platform.ingestion.loader import IngestionError, RangeResult
from payment_platform.stores import kafka

pytestmark = pytest.mark.stack


class Progress:
    def __init__(self):
        self.next = {}

    def read_progress(self, topic):
        return dict(self.next)


class StandInLoader:
    """Lands what it is given (records progress) unless told to fail the next `failures` calls."""

    def __init__(self, failures: int = 0):
        self.postgres, self.failures, self.calls = Progress(), failures, []

    def ensure_schemas(self, log=None):
        pass

    def ingest(self, offset_range, chunk_size, log, messages):
        self.calls.append((offset_range.start, offset_range.end, len(messages)))
        if self.failures:
            self.failures -= 1
            raise IngestionError(f"{offset_range}: backup unreachable too")
        self.postgres.next[offset_range.partition] = offset_range.end
        return RangeResult(range=offset_range, messages=len(messages))


class Lease:
    def __init__(self, lost_after: int | None = None):
        self.checks, self.lost_after, self.released = 0, lost_after, False

    def acquire(self, wait_s, should_stop):
        return True

    def held(self):
        self.checks += 1
        return self.lost_after is None or self.checks <= self.lost_after

    def release(self):
        self.released = True


@pytest.fixture
def topic(stack):
    name = f"runner-{uuid.uuid4().hex[:8]}"
    kafka.ensure_topic(stack.endpoints.kafka, name, partitions=1)
    return name


def publish(bootstrap, topic, count):
    from payment_platform.generation.generator import generate

    with kafka.Publisher(bootstrap, topic) as publisher:
        assert publisher.publish(list(generate(count, seed=uuid.uuid4().int % 2**31))).acknowledged == count


def settings(**overrides):
    return LeaseSettings(**{"lease_seconds": 20, "idle_seconds": 1.0, "min_batch_size": 10, "max_batch_size": 40,
                            "max_wait_seconds": 0.2, "max_failures": 4, **overrides})


def test_a_backlog_is_landed_in_full_batches_then_the_idle_lease_ends(stack, topic):
    publish(stack.endpoints.kafka, topic, 100)
    loader, lease = StandInLoader(), Lease()
    events = list(LeaseRunner(loader, stack.endpoints.kafka, topic, 0, lease, settings(), sleep=lambda s: None).run())
    landed = [e for e in events if isinstance(e, LandedBatch)]
    assert [(e.result.range.start, e.result.range.end) for e in landed] == [(0, 40), (40, 80), (80, 100)]
    assert isinstance(events[-1], LeaseEnd) and "nothing to ingest" in events[-1].reason
    assert events[-1].messages == 100 and lease.released


def test_a_failing_batch_is_tried_again_smaller_then_ends_the_lease_naming_partition_offset_and_error(stack, topic):
    publish(stack.endpoints.kafka, topic, 100)
    loader, lease = StandInLoader(failures=10), Lease()
    runner = LeaseRunner(loader, stack.endpoints.kafka, topic, 0, lease, settings(), sleep=lambda s: None)
    events = []
    with pytest.raises(LeaseError, match=rf"{topic}\[0\] at offset 0: the batch failed 4 times in a row .*"
                                         r"backup unreachable too"):
        for event in runner.run():
            events.append(event)
    assert [c[2] for c in loader.calls] == [40, 20, 10, 5]  # halved each time, from the recorded progress
    assert all(c[0] == 0 for c in loader.calls)
    assert [e.failures for e in events if isinstance(e, BatchFailed)] == [1, 2, 3]
    assert lease.released


def test_after_a_failure_the_batch_lands_and_the_size_comes_back(stack, topic):
    publish(stack.endpoints.kafka, topic, 100)
    loader = StandInLoader(failures=1)
    events = list(LeaseRunner(loader, stack.endpoints.kafka, topic, 0, Lease(), settings(),
                              sleep=lambda s: None).run())
    assert [c[2] for c in loader.calls] == [40, 20, 40, 40]
    assert loader.postgres.next == {0: 100}
    assert sum(e.result.messages for e in events if isinstance(e, LandedBatch)) == 100


def test_a_lost_lease_stops_the_run_before_its_next_batch(stack, topic):
    publish(stack.endpoints.kafka, topic, 100)
    loader = StandInLoader()
    runner = LeaseRunner(loader, stack.endpoints.kafka, topic, 0, Lease(lost_after=1), settings(),
                         sleep=lambda s: None)
    with pytest.raises(LeaseError, match="the lease was lost"):
        list(runner.run())
    assert len(loader.calls) == 1
