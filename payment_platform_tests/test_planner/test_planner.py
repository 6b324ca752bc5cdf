"""The lease planner: pure logic, every transition of the cursor."""
import pytest

from payment_platform.ingestion.planner import (
    CursorState,
    FailureStreak,
    Lease,
    PlanError,
    PlannerSettings,
    RunInfo,
    RunState,
    failure_pause,
    lag_of,
    lease_run_key,
    plan,
)

T = "payments"
S = PlannerSettings(max_concurrent_ranges=2, missing_run_seconds=60, lease_seconds=600, handover_seconds=30)
ACTIVE = RunInfo(RunState.ACTIVE)


def run(end, progress, cursor=None, infos=None, now=1000.0, settings=S, first=None, topic_id=None):
    return plan(topic=T, end_offsets=end, progress=progress, cursor=cursor or CursorState(),
                run_infos=infos or {}, now=now, settings=settings, first_offsets=first, topic_id=topic_id)


def leased(p) -> dict[int, int]:
    return {r.partition: r.start_offset for r in p.leases}


def test_run_keys_are_unique_in_time_and_carry_the_reset_epoch():
    assert lease_run_key(T, 2, 1000.5) == "ingest:payments:2:lease:1000500"
    assert lease_run_key(T, 2, 1000.5, epoch=3) == "ingest:payments:2:lease:1000500:reset3"
    assert lease_run_key(T, 2, 1000.5) != lease_run_key(T, 2, 1000.501)


def test_empty_topic_plans_nothing_and_says_why():
    p = run({0: 0, 1: 0}, {})
    assert p.leases == [] and p.resets == []
    assert "no new messages" in p.summary()
    assert p.cursor.end_offsets == {0: 0, 1: 0} and p.cursor.leases == {}


def test_a_partition_with_one_message_waiting_gets_a_lease_at_once_from_recorded_progress():
    p = run({0: 301, 1: 40}, {0: 300, 1: 40})
    assert leased(p) == {0: 300}  # no batch to fill first: the lease forms its own micro-batches
    assert [lease.run_key for lease in p.cursor.leases[0]] == [p.leases[0].run_key]
    assert "requested lease" in p.summary()


def test_a_running_lease_is_left_alone_and_no_second_one_is_requested():
    first = run({0: 500}, {})
    key = first.leases[0].run_key
    p = run({0: 900}, {0: 200}, cursor=first.cursor, infos={key: RunInfo(RunState.ACTIVE, started_at=1001)}, now=1010)
    assert p.leases == [] and [lease.run_key for lease in p.cursor.leases[0]] == [key]
    assert "leased, ingesting" in p.summary()


def test_the_successor_is_requested_before_the_lease_ends_and_only_once():
    first = run({0: 500}, {})
    key = first.leases[0].run_key
    early = run({0: 900}, {0: 800}, cursor=first.cursor, infos={key: RunInfo(RunState.ACTIVE, started_at=1000)},
                now=1000 + 600 - 31)
    assert early.leases == []
    late = run({0: 900}, {0: 800}, cursor=early.cursor, infos={key: RunInfo(RunState.ACTIVE, started_at=1000)},
               now=1000 + 600 - 29)
    assert [(r.partition, r.start_offset, r.successor) for r in late.leases] == [(0, 800, True)]
    successor = late.leases[0].run_key
    again = run({0: 950}, {0: 850}, cursor=late.cursor, now=1000 + 600 - 20,
                infos={key: RunInfo(RunState.ACTIVE, started_at=1000), successor: ACTIVE})
    assert again.leases == [] and len(again.cursor.leases[0]) == 2
    # the lease ended: its successor is the partition's lease now
    handed = run({0: 950}, {0: 900}, cursor=again.cursor, now=1000 + 601,
                 infos={key: RunInfo(RunState.SUCCEEDED, 1000), successor: RunInfo(RunState.ACTIVE, 1000 + 575)})
    assert handed.leases == [] and [lease.run_key for lease in handed.cursor.leases[0]] == [successor]


def test_a_finished_lease_of_an_idle_partition_is_not_renewed_until_messages_wait():
    first = run({0: 500}, {})
    key = first.leases[0].run_key
    idle = run({0: 500}, {0: 500}, cursor=first.cursor, infos={key: RunInfo(RunState.SUCCEEDED, 1000)}, now=1200)
    assert idle.leases == [] and idle.cursor.leases == {}
    busy = run({0: 501}, {0: 500}, cursor=idle.cursor, now=1300)
    assert leased(busy) == {0: 500}


def test_leases_are_bounded_across_partitions_the_biggest_backlog_first_and_no_successor_while_one_waits():
    p = run({0: 10, 1: 5000, 2: 300}, {})
    assert leased(p) == {1: 0, 2: 0}
    assert "waits: 2 partitions leased" in " ".join(p.notes)
    infos = {r.run_key: RunInfo(RunState.ACTIVE, started_at=1000) for r in p.leases}
    near_end = run({0: 10, 1: 5000, 2: 300}, {1: 4000, 2: 300}, cursor=p.cursor, infos=infos, now=1000 + 590)
    assert near_end.leases == []  # partition 0 waits for a slot: expiring leases end, no successors


def test_a_failed_lease_is_followed_by_another_after_a_growing_pause_and_the_streak_is_named():
    first = run({0: 500}, {})
    key = first.leases[0].run_key
    failed = run({0: 500}, {0: 100}, cursor=first.cursor, now=1010,
                 infos={key: RunInfo(RunState.FAILED, 1001, "run 1: IngestionError: backup unreachable")})
    assert leased(failed) == {0: 100}  # the first failure: again at once, from the recorded progress
    assert failed.cursor.failures[0] == FailureStreak(1, 100, 1010, "run 1: IngestionError: backup unreachable")
    assert "failed (1 in a row at offset 100)" in " ".join(failed.notes)
    second = failed.leases[0].run_key
    twice = run({0: 500}, {0: 100}, cursor=failed.cursor, now=1020,
                infos={second: RunInfo(RunState.FAILED, 1011, "run 2: same")})
    assert twice.leases == [] and twice.cursor.failures[0].count == 2
    assert "next lease in 5s" in " ".join(twice.notes)
    later = run({0: 500}, {0: 100}, cursor=twice.cursor, now=1026)
    assert leased(later) == {0: 100}
    # progress moved: a new failure starts a new streak; a success ends it
    third = later.leases[0].run_key
    moved = run({0: 500}, {0: 300}, cursor=later.cursor, now=1030, infos={third: RunInfo(RunState.FAILED, 1027, "x")})
    assert moved.cursor.failures[0].count == 1 and moved.cursor.failures[0].offset == 300
    fourth = moved.leases[0].run_key
    ok = run({0: 500}, {0: 500}, cursor=moved.cursor, now=1040, infos={fourth: RunInfo(RunState.SUCCEEDED, 1031)})
    assert ok.cursor.failures == {}


def test_failure_pause_grows_and_is_capped():
    assert [failure_pause(n) for n in (1, 2, 3, 4, 10)] == [0.0, 5.0, 10.0, 20.0, 60.0]


def test_a_lease_whose_run_never_appeared_is_requested_again_after_the_grace_period():
    first = run({0: 500}, {})
    early = run({0: 500}, {}, cursor=first.cursor, now=1059)
    assert early.leases == [] and len(early.cursor.leases[0]) == 1
    late = run({0: 500}, {}, cursor=first.cursor, now=1061)
    assert leased(late) == {0: 0} and late.leases[0].run_key != first.leases[0].run_key
    assert "never started" in " ".join(late.notes)


def test_offsets_going_backwards_below_progress_are_reset_and_reported():
    cursor = run({0: 500, 1: 40}, {0: 500, 1: 40}).cursor
    p = run({0: 120, 1: 60}, {0: 500, 1: 40}, cursor=cursor, now=1010)
    assert [(r.partition, r.from_offset, r.to_offset, r.end_offset) for r in p.resets] == [(0, 500, 0, 120)]
    assert "went backwards" in p.resets[0].reason
    assert leased(p) == {1: 40}  # partition 0 waits for the reset to be recorded
    assert p.cursor.resets == 1 and p.cursor.end_offsets[0] == 120
    after = run({0: 120, 1: 60}, {0: 0, 1: 60}, cursor=p.cursor, now=1011,
                infos={p.leases[0].run_key: ACTIVE})
    assert after.resets == [] and leased(after) == {0: 0}
    assert after.leases[0].run_key.endswith(":reset1")


def test_end_offset_below_last_seen_but_above_progress_is_a_reset_too():
    cursor = run({0: 150}, {0: 100}).cursor
    p = run({0: 120}, {0: 100}, cursor=cursor, now=1001, first={0: 0})
    assert [(r.from_offset, r.to_offset) for r in p.resets] == [(100, 0)]


def test_topic_change_starts_a_fresh_cursor():
    cursor = run({0: 500}, {}).cursor
    p = plan(topic="other", end_offsets={0: 0}, progress={}, cursor=cursor, run_infos={}, now=1001, settings=S)
    assert p.resets == [] and p.leases == []
    assert p.cursor.topic == "other" and p.cursor.leases == {}
    assert "topic changed" in " ".join(p.notes)


def test_cursor_round_trips_as_json_and_bad_cursors_are_errors():
    cursor = run({0: 500, 1: 3}, {}).cursor
    cursor.failures[1] = FailureStreak(2, 3, 999.0, "boom")
    assert CursorState.from_json(cursor.to_json()) == cursor
    assert CursorState.from_json(None) == CursorState()
    with pytest.raises(PlanError, match="cursor"):
        CursorState.from_json("{not json")
    with pytest.raises(PlanError, match="version"):
        CursorState.from_json('{"version": 1}')  # a range-planning cursor: the sensor starts fresh


@pytest.mark.parametrize("kwargs, setting", [
    ({"min_batch_size": 0}, "min_batch_size"),
    ({"min_batch_size": 10, "max_batch_size": 5}, "max_batch_size"),
    ({"max_wait_seconds": -1}, "max_wait_seconds"),
    ({"max_concurrent_ranges": 0}, "max_concurrent_ranges"),
    ({"lease_seconds": 0}, "lease_seconds"),
    ({"lease_seconds": 30, "handover_seconds": 30}, "handover_seconds"),
])
def test_bad_settings_name_the_setting(kwargs, setting):
    with pytest.raises(PlanError, match=setting):
        PlannerSettings(**kwargs)


def test_lag_counts_only_what_is_not_yet_ingested():
    assert lag_of({0: 10, 1: 5}, {0: 4}).as_metadata() == {
        "lag": 11, "end_offset_sum": 15, "progress_sum": 4, "partitions": 2}


def test_first_lease_past_offset_zero_is_put_on_record_first():
    p = run({0: 700}, {}, first={0: 200})
    assert [(r.partition, r.from_offset, r.to_offset) for r in p.resets] == [(0, 0, 200)]
    assert p.leases == []
    assert p.cursor.resets == 0  # not offsets going backwards: run keys keep no suffix
    after = run({0: 700}, {0: 200}, cursor=p.cursor, first={0: 200}, now=1001)
    assert after.resets == [] and leased(after) == {0: 200}


def test_a_new_topic_id_is_a_reset_even_when_offsets_look_fine():
    first = run({0: 150, 1: 0}, {0: 100}, topic_id="id-1")
    assert first.cursor.topic_id == "id-1" and first.resets == []
    key = first.leases[0].run_key
    again = run({0: 160, 1: 0}, {0: 150}, cursor=first.cursor, now=1001, topic_id="id-2", infos={key: ACTIVE})
    assert [(r.partition, r.from_offset, r.to_offset) for r in again.resets] == [(0, 150, 0)]
    assert "topic id changed from id-1 to id-2" in again.resets[0].reason
    assert again.cursor.topic_id == "id-2" and again.cursor.resets == 1
    assert again.leases == []  # the running lease fails on the reset (its offsets are gone); a new one follows
    same = run({0: 160, 1: 0}, {0: 160}, cursor=first.cursor, now=1001, topic_id=None, infos={key: ACTIVE})
    assert same.resets == [] and same.cursor.topic_id == "id-1"


def test_cursor_leases_list_every_run_key_for_the_sensor_to_look_up():
    cursor = CursorState(topic=T, leases={1: [Lease("b", 1.0)], 0: [Lease("a", 1.0), Lease("c", 2.0)]})
    assert cursor.lease_keys() == ["a", "c", "b"]
