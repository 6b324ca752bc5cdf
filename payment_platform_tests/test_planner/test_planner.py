"""The micro-batch planner: pure logic, every transition of the cursor."""
import pytest

from payment_platform.ingestion.planner import (
    CursorState,
    InFlight,
    PlanError,
    PlannedRange,
    PlannerSettings,
    RunState,
    lag_of,
    plan,
    range_run_key,
)

T = "payments"
S = PlannerSettings(min_batch_size=100, max_batch_size=1000, max_wait_seconds=5, max_concurrent_ranges=2,
                    missing_run_seconds=60)


def run(end, progress, cursor=None, states=None, now=1000.0, settings=S, first=None):
    return plan(topic=T, end_offsets=end, progress=progress, cursor=cursor or CursorState(),
                run_states=states or {}, now=now, settings=settings, first_offsets=first)


def test_run_key_is_stable_and_retries_get_a_suffix():
    assert range_run_key(T, 2, 10, 20) == "ingest:payments:2:10-20"
    assert range_run_key(T, 2, 10, 20, attempt=3) == "ingest:payments:2:10-20:retry3"
    assert PlannedRange(T, 2, 10, 20, 1).run_key == "ingest:payments:2:10-20:retry1"


def test_empty_topic_plans_nothing_and_says_why():
    p = run({0: 0, 1: 0}, {})
    assert p.ranges == [] and p.resets == []
    assert "no new messages" in p.summary()
    assert p.cursor.end_offsets == {0: 0, 1: 0} and p.cursor.in_flight == {}


def test_full_batch_is_planned_at_once_from_recorded_progress():
    p = run({0: 450}, {0: 300})
    assert p.ranges == [PlannedRange(T, 0, 300, 450)]
    assert p.cursor.in_flight[0] == InFlight(300, 450, 0, 1000.0)
    assert p.lag.lag == 150 and p.lag.end_offset_sum == 450 and p.lag.progress_sum == 300


def test_small_batch_waits_then_goes_once_the_oldest_message_waited_long_enough():
    first = run({0: 3}, {})
    assert first.ranges == [] and first.cursor.waiting_since == {0: 1000.0}
    assert "waiting to fill a batch" in first.summary()
    # new messages arrive, the clock keeps the first sighting
    second = run({0: 7}, {}, cursor=first.cursor, now=1003.0)
    assert second.ranges == [] and second.cursor.waiting_since == {0: 1000.0}
    third = run({0: 8}, {}, cursor=second.cursor, now=1005.0)
    assert third.ranges == [PlannedRange(T, 0, 0, 8)]
    assert third.cursor.waiting_since == {}


def test_range_is_capped_at_max_batch_size_and_the_rest_keeps_its_wait_clock():
    p = run({0: 2500}, {0: 0})
    assert p.ranges == [PlannedRange(T, 0, 0, 1000)]
    assert p.cursor.waiting_since == {0: 1000.0}


def test_one_range_per_partition_in_flight():
    first = run({0: 500}, {})
    second = run({0: 900}, {}, cursor=first.cursor, states={first.ranges[0].run_key: RunState.ACTIVE}, now=1010)
    assert second.ranges == []
    assert second.cursor.in_flight[0] == first.cursor.in_flight[0]


def test_finished_range_frees_the_partition_and_next_range_starts_at_its_end():
    first = run({0: 500}, {})
    key = first.ranges[0].run_key
    second = run({0: 900}, {0: 500}, cursor=first.cursor, states={key: RunState.SUCCEEDED}, now=1010)
    assert second.ranges == [PlannedRange(T, 0, 500, 900)]
    # progress alone proves it done, whatever the run state says
    third = run({0: 900}, {0: 500}, cursor=first.cursor, states={key: RunState.ACTIVE}, now=1010)
    assert third.ranges == [PlannedRange(T, 0, 500, 900)]


def test_concurrency_limit_across_partitions_oldest_wait_first():
    waited = run({0: 1, 1: 1, 2: 1}, {}, now=900)  # all three start waiting
    later = run({0: 1, 1: 500, 2: 300}, {}, cursor=waited.cursor, now=1000)
    assert len(later.ranges) == 2  # max_concurrent_ranges=2
    assert {r.partition for r in later.ranges} == {1, 2}  # same wait: the biggest backlog first
    assert "already in flight" in " ".join(later.notes)
    assert set(later.cursor.in_flight) == {1, 2}
    assert 0 in later.cursor.waiting_since


def test_failed_for_good_range_is_requested_again_with_a_suffix_never_skipped():
    first = run({0: 500}, {})
    key = first.ranges[0].run_key
    again = run({0: 800}, {}, cursor=first.cursor, states={key: RunState.FAILED}, now=1100)
    assert again.ranges == [PlannedRange(T, 0, 0, 500, attempt=1)]
    assert again.ranges[0].run_key == key + ":retry1"
    assert again.cursor.in_flight[0] == InFlight(0, 500, 1, 1100)
    third = run({0: 800}, {}, cursor=again.cursor, states={key + ":retry1": RunState.FAILED}, now=1200)
    assert third.ranges[0].run_key == key + ":retry2"


def test_a_run_that_never_appeared_is_requested_again_after_the_grace_period():
    first = run({0: 500}, {})
    early = run({0: 500}, {}, cursor=first.cursor, now=1030)
    assert early.ranges == []
    late = run({0: 500}, {}, cursor=first.cursor, now=1061)
    assert late.ranges == [PlannedRange(T, 0, 0, 500, attempt=1)]


def test_offsets_going_backwards_below_progress_are_reset_and_reported():
    cursor = run({0: 500, 1: 40}, {0: 500, 1: 40}).cursor
    p = run({0: 120, 1: 60}, {0: 500, 1: 40}, cursor=cursor, now=1010)
    assert [(r.partition, r.from_offset, r.to_offset, r.end_offset) for r in p.resets] == [(0, 500, 0, 120)]
    assert "went backwards" in p.resets[0].reason
    assert [r.partition for r in p.ranges] == []  # partition 1 has only 20 waiting, partition 0 waits for the reset
    assert p.cursor.resets == 1 and p.cursor.end_offsets[0] == 120
    # next tick, after the reset was recorded, the new data is planned from the first offset
    after = run({0: 120, 1: 60}, {0: 0, 1: 40}, cursor=p.cursor, now=1011)
    assert after.resets == [] and after.ranges == [PlannedRange(T, 0, 0, 120, epoch=1)]
    # the same offsets now hold other messages: the run key must differ from any earlier one
    assert after.ranges[0].run_key == "ingest:payments:0:0-120:reset1"


def test_end_offset_below_last_seen_but_above_progress_is_a_reset_too():
    # broker restarted and refilled to 120 while progress was 100 and we had seen 150
    cursor = run({0: 150}, {0: 100}, settings=PlannerSettings(min_batch_size=1000, max_batch_size=2000)).cursor
    p = run({0: 120}, {0: 100}, cursor=cursor, now=1001, first={0: 0})
    assert [(r.from_offset, r.to_offset) for r in p.resets] == [(100, 0)]


def test_reset_drops_the_in_flight_range_of_the_old_data():
    first = run({0: 500}, {})
    p = run({0: 50}, {0: 0}, cursor=first.cursor, states={first.ranges[0].run_key: RunState.ACTIVE}, now=1010)
    assert p.resets and 0 not in p.cursor.in_flight


def test_topic_change_starts_a_fresh_cursor():
    cursor = run({0: 500}, {}).cursor
    p = plan(topic="other", end_offsets={0: 10}, progress={}, cursor=cursor, run_states={}, now=1001, settings=S)
    assert p.resets == [] and p.ranges == []
    assert p.cursor.topic == "other" and p.cursor.in_flight == {}
    assert "topic changed" in " ".join(p.notes)


def test_cursor_round_trips_as_json_and_bad_cursors_are_errors():
    cursor = run({0: 500, 1: 3}, {}).cursor
    assert CursorState.from_json(cursor.to_json()) == cursor
    assert CursorState.from_json(None) == CursorState()
    with pytest.raises(PlanError, match="cursor"):
        CursorState.from_json("{not json")
    with pytest.raises(PlanError, match="version"):
        CursorState.from_json('{"version": 99}')


@pytest.mark.parametrize("kwargs, setting", [
    ({"min_batch_size": 0}, "min_batch_size"),
    ({"min_batch_size": 10, "max_batch_size": 5}, "max_batch_size"),
    ({"max_wait_seconds": -1}, "max_wait_seconds"),
    ({"max_concurrent_ranges": 0}, "max_concurrent_ranges"),
])
def test_bad_settings_name_the_setting(kwargs, setting):
    with pytest.raises(PlanError, match=setting):
        PlannerSettings(**kwargs)


def test_lag_counts_only_what_is_not_yet_ingested():
    assert lag_of({0: 10, 1: 5}, {0: 4}).as_metadata() == {
        "lag": 11, "end_offset_sum": 15, "progress_sum": 4, "partitions": 2}


def test_first_range_past_offset_zero_is_put_on_record_first():
    p = run({0: 700}, {}, first={0: 200})
    assert [(r.partition, r.from_offset, r.to_offset) for r in p.resets] == [(0, 0, 200)]
    assert p.ranges == []
    assert p.cursor.resets == 0  # not offsets going backwards: run keys keep no suffix
    after = run({0: 700}, {0: 200}, cursor=p.cursor, first={0: 200}, now=1001)
    assert after.resets == [] and after.ranges == [PlannedRange(T, 0, 200, 700)]


def test_a_new_topic_id_is_a_reset_even_when_offsets_look_fine():
    # the topic was recreated and refilled past the old end between two ticks: only its id tells
    first = plan(topic=T, end_offsets={0: 150, 1: 0}, progress={0: 100}, cursor=CursorState(), run_states={},
                 now=1000, settings=S, topic_id="id-1")
    assert first.cursor.topic_id == "id-1" and first.resets == []
    again = plan(topic=T, end_offsets={0: 160, 1: 0}, progress={0: 150}, cursor=first.cursor, run_states={},
                 now=1001, settings=S, topic_id="id-2")
    assert [(r.partition, r.from_offset, r.to_offset) for r in again.resets] == [(0, 150, 0)]
    assert "topic id changed from id-1 to id-2" in again.resets[0].reason
    assert again.cursor.topic_id == "id-2" and again.cursor.resets == 1
    assert again.ranges == [] and 0 not in again.cursor.in_flight
    # an unknown id (the broker does not report one) changes nothing
    same = plan(topic=T, end_offsets={0: 160, 1: 0}, progress={0: 160}, cursor=first.cursor, run_states={},
                now=1001, settings=S, topic_id=None)
    assert same.resets == [] and same.cursor.topic_id == "id-1"


def test_a_failed_range_overtaken_by_recorded_progress_is_replanned_not_retried_forever():
    # e.g. a run left over from a lost cursor recorded [0, 300) while our [0, 500) failed on the overlap
    first = run({0: 500}, {})
    key = first.ranges[0].run_key
    p = run({0: 800}, {0: 300}, cursor=first.cursor, states={key: RunState.FAILED}, now=1010)
    assert p.ranges == [PlannedRange(T, 0, 300, 800)]
    assert "replanning from 300" in " ".join(p.notes)
