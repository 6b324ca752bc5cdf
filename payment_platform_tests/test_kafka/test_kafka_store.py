"""stores.kafka against a real broker: topics, offsets, exact ranges, acknowledged publishing, bounded failures."""
import threading
import time

import pytest

from payment_platform.defs.resources import KafkaResource
from payment_platform.stores import kafka
from payment_platform_tests.test_kafka.conftest import Outgoing

pytestmark = pytest.mark.stack


def publish(bootstrap, topic, n, prefix=b"m", **options):
    with kafka.Publisher(bootstrap, topic, **options) as publisher:
        for i in range(n):
            publisher.send(Outgoing(prefix + str(i).encode(), key=str(i % 7).encode(),
                                    headers={"defect": b"not_json"} if i % 10 == 0 else {}))
        return publisher.flush()


def test_ensure_topic_is_idempotent_and_offsets_start_at_zero(bootstrap, topic):
    assert kafka.ensure_topic(bootstrap, topic) is True
    assert kafka.ensure_topic(bootstrap, topic) is False
    assert kafka.end_offsets(bootstrap, topic) == {0: 0, 1: 0, 2: 0}
    assert kafka.beginning_offsets(bootstrap, topic) == {0: 0, 1: 0, 2: 0}
    assert kafka.partitions_for(bootstrap, topic) == [0, 1, 2]


def test_unknown_topic_is_reported_not_created(bootstrap, topic):
    with pytest.raises(kafka.UnknownTopic, match=topic):
        kafka.end_offsets(bootstrap, topic)
    with pytest.raises(kafka.UnknownTopic, match=topic):
        kafka.topic_id(bootstrap, topic)


def test_publisher_counts_acknowledged_and_end_offsets_match_what_was_written(bootstrap, topic):
    kafka.ensure_topic(bootstrap, topic)
    # linger batches several records together: Tansu's ListOffsets alone would report less than this
    result = publish(bootstrap, topic, 3000, linger_ms=20)
    assert (result.sent, result.acknowledged, result.failed) == (3000, 3000, 0)
    assert sum(result.counts_by_partition().values()) == 3000
    assert kafka.end_offsets(bootstrap, topic) == {p: end for p, (_, end) in result.offsets.items()}
    again = publish(bootstrap, topic, 10, linger_ms=20)
    assert sum(end for end in kafka.end_offsets(bootstrap, topic).values()) == 3010
    assert all(again.offsets[p][0] == result.offsets[p][1] for p in again.offsets)


def test_read_range_returns_exactly_the_range_in_chunks_with_headers(bootstrap, topic):
    kafka.ensure_topic(bootstrap, topic, partitions=1)
    publish(bootstrap, topic, 1000)
    chunks = list(kafka.read_range(bootstrap, topic, 0, 100, 777, batch=250))
    assert [len(c) for c in chunks] == [250, 250, 177]
    messages = [m for c in chunks for m in c]
    assert [m.offset for m in messages] == list(range(100, 777))
    assert messages[0].value == b"m100" and messages[0].headers == {"defect": b"not_json"}
    assert messages[1].headers == {} and messages[1].key == b"3"  # 101 % 7
    assert list(kafka.read_range(bootstrap, topic, 0, 5, 5)) == []


def test_read_range_past_the_end_raises_instead_of_returning_short(bootstrap, topic):
    kafka.ensure_topic(bootstrap, topic, partitions=1)
    publish(bootstrap, topic, 50)
    started = time.monotonic()
    with pytest.raises(kafka.RangeUnavailable, match="not all on the broker"):
        for _ in kafka.read_range(bootstrap, topic, 0, 40, 60):
            pass
    assert time.monotonic() - started < 10
    with pytest.raises(ValueError):
        list(kafka.read_range(bootstrap, topic, 0, 10, 5))


def test_the_resource_client_makes_the_same_calls_over_one_admin_connection(bootstrap, topic):
    with KafkaResource(bootstrap_servers=bootstrap, topic=topic).client() as client:
        client.ensure_topic(partitions=1)
        admin = client._admin()
        with client.publisher() as publisher:
            publisher.send(Outgoing(b"x"))
            assert publisher.flush().acknowledged == 1
        assert client.end_offsets() == {0: 1}
        assert client.beginning_offsets() == {0: 0} and client.topic_id() is not None
        assert [m.value for c in client.read_range(0, 0, 1) for m in c] == [b"x"]
        assert client._admin() is admin  # one admin connection for every call of this use
    assert client._admin_client is None  # closed with the client


@pytest.mark.parametrize("call", [
    lambda b: kafka.end_offsets(b, "t", timeout_s=2),
    lambda b: kafka.beginning_offsets(b, "t", timeout_s=2),
    lambda b: kafka.ensure_topic(b, "t", timeout_s=2),
    lambda b: kafka.topic_id(b, "t", timeout_s=2),
    lambda b: list(kafka.read_range(b, "t", 0, 0, 5, timeout_s=2)),
])
def test_a_dead_broker_gives_an_error_within_seconds(dead_bootstrap, call):
    started = time.monotonic()
    with pytest.raises(kafka.KafkaUnavailable, match="unreachable"):
        call(dead_bootstrap)
    assert time.monotonic() - started < 5


def test_publisher_gives_up_after_bounded_retries_saying_nothing_was_acknowledged(dead_bootstrap):
    started = time.monotonic()
    with pytest.raises(kafka.PublishError, match="unreachable after 2 attempts.*0 payments acknowledged") as caught:
        kafka.Publisher(dead_bootstrap, "t", connect_attempts=2, connect_timeout_s=1)
    assert caught.value.acknowledged == 0
    assert time.monotonic() - started < 6


def test_broker_dying_mid_publish_reports_only_what_was_acknowledged(private_broker, topic):
    kafka.ensure_topic(private_broker.bootstrap, topic)
    publisher = kafka.Publisher(private_broker.bootstrap, topic, delivery_timeout_s=3, connect_timeout_s=2)
    for i in range(2000):
        publisher.send(Outgoing(b"before-%d" % i))
    acknowledged_before = publisher.flush().acknowledged
    assert acknowledged_before == 2000
    private_broker.kill()
    started = time.monotonic()
    with pytest.raises(kafka.PublishError) as caught:
        for i in range(500):
            publisher.send(Outgoing(b"after-%d" % i))
        publisher.flush(timeout_s=8)
    error = caught.value
    assert time.monotonic() - started < 30
    assert error.acknowledged == acknowledged_before  # nothing sent after the kill is reported as sent
    assert error.acknowledged + error.failed == publisher.result.sent
    assert f"{acknowledged_before} of {publisher.result.sent} payments acknowledged" in str(error)
    closer = threading.Thread(target=publisher.close, kwargs={"timeout_s": 2}, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive()


def test_a_restarted_memory_broker_makes_old_ranges_unreadable_instead_of_short(private_broker, topic):
    bootstrap = private_broker.bootstrap
    kafka.ensure_topic(bootstrap, topic, partitions=1)
    publish(bootstrap, topic, 100)
    assert kafka.end_offsets(bootstrap, topic) == {0: 100}
    epoch = kafka.topic_id(bootstrap, topic)
    assert epoch and epoch == kafka.topic_id(bootstrap, topic)
    private_broker.restart()
    with pytest.raises(kafka.UnknownTopic):
        kafka.end_offsets(bootstrap, topic)
    kafka.ensure_topic(bootstrap, topic, partitions=1)
    publish(bootstrap, topic, 10)
    assert kafka.end_offsets(bootstrap, topic) == {0: 10}  # went backwards: the caller must notice
    assert kafka.topic_id(bootstrap, topic) not in (None, epoch)  # and the topic id says why
    with pytest.raises(kafka.RangeUnavailable, match="ends at offset 10"):
        list(kafka.read_range(bootstrap, topic, 0, 50, 100))
