"""The cut, the incremental plan and the throttle: pure logic, no servers."""
import pytest

from payment_platform.defs.checks.checks import CHECKS_TAG
from payment_platform.reconciliation.cut import (
    SEGMENTS,
    BacklogProbe,
    Cut,
    Rotation,
    Throttle,
    landed_between,
    plan_increment,
)
from payment_platform.scaling.run_limits import CHECKS_TAG as LIMITED_TAG


def test_a_position_below_the_progress_is_settled_and_one_at_or_past_it_is_in_flight():
    cut = Cut.of({("t", 0): 10, ("t", 1): 0})
    assert cut.below("t", 0, 9)
    assert not cut.below("t", 0, 10)
    assert not cut.below("t", 1, 0)  # nothing recorded for partition 1
    assert not cut.below("other", 0, 0)  # a topic without progress: in flight
    assert cut.below(None, None, None)  # no position: never hidden as in flight


def test_the_hbase_position_cell_is_read_with_a_topic_holding_colons():
    cut = Cut.of({("a:b", 2): 5})
    assert cut.below_cell(b"a:b:2:4") and not cut.below_cell(b"a:b:2:5")
    assert cut.below_cell(None) and cut.below_cell(b"garbage")  # unreadable: compared, not skipped


def test_a_cut_round_trips_through_json_and_names_itself():
    cut = Cut.of({("t", 0): 10, ("t", 1): 7})
    assert Cut.from_json(cut.as_json()) == cut
    metadata = cut.metadata()
    assert metadata["cut_offsets"] == {"t[0]": 10, "t[1]": 7} and metadata["cut_positions_below"] == 17
    assert "t[0]<10" in metadata["cut"]


def test_what_landed_since_a_cut_is_the_span_between_the_two_progresses():
    since = Cut.of({("t", 0): 10, ("t", 1): 7})
    now = Cut.of({("t", 0): 25, ("t", 1): 7, ("t", 2): 3})
    assert landed_between(since, now) == [("t", 0, 10, 25), ("t", 2, 0, 3)]
    assert landed_between(None, now) == [("t", 0, 0, 25), ("t", 1, 0, 7), ("t", 2, 0, 3)]
    # offsets went backwards (broker restarted): the partition is taken whole
    assert landed_between(Cut.of({("t", 0): 100}), Cut.of({("t", 0): 4})) == [("t", 0, 0, 4)]


def test_the_rotation_reads_every_segment_within_the_stated_time():
    rotation = Rotation.for_full_pass(6, 15)
    assert rotation.segments_per_run == 11 and rotation.runs_per_pass == 24
    assert rotation.guarantee_hours == 6.25
    assert "within 6.25 h" in rotation.describe()
    assert Rotation.for_full_pass(0.25, 15).segments_per_run == len(SEGMENTS)


def test_runs_of_the_plan_cover_every_segment_once_per_pass_and_keep_failing_ones():
    rotation = Rotation(segments_per_run=100, interval_minutes=15)
    cut, seen, position = Cut.of({("t", 0): 1}), [], 0
    for _ in range(rotation.runs_per_pass):
        increment = plan_increment(cut, None, position, [], rotation)
        seen += increment.rotated
        position = increment.next_segment
    assert sorted(seen[:len(SEGMENTS)]) == SEGMENTS  # 3 runs: every segment, the last run wraps around
    failing = plan_increment(cut, None, 0, ["ff", "zz"], rotation)
    assert "ff" in failing.segments and "zz" not in failing.segments and "ff" not in failing.rotated


def test_the_throttle_pauses_in_proportion_to_the_work():
    now, pauses = [0.0], []
    throttle = Throttle(0.25, clock=lambda: now[0], sleep=lambda s: (pauses.append(s), now.__setitem__(0, now[0] + s)))
    throttle.tick()
    now[0] += 1.0  # a batch took 1 s
    throttle.tick()
    assert pauses == [3.0] and throttle.slept == 3.0  # busy 1 s of every 4
    with pytest.raises(ValueError, match="busy_share"):
        Throttle(0)


def fake_time():
    now = [0.0]
    return now, (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))


def test_the_throttle_waits_while_ingestion_is_behind_but_never_more_than_its_share():
    now, clock, sleep = fake_time()
    answers = iter([True, True, False])
    throttle = Throttle(1.0, clock=clock, sleep=sleep, behind=lambda: next(answers), max_yield_share=0.8)
    throttle.tick()  # the first batch starts the clock: waiting now would exceed the share of no time at all
    now[0] += 10.0  # 10 s of reading
    throttle.tick()  # behind, behind, caught up: two polls of 1 s
    assert throttle.yielded == 2.0 and now[0] == 12.0

    now, clock, sleep = fake_time()
    throttle = Throttle(1.0, clock=clock, sleep=sleep, behind=lambda: True, max_yield_share=0.8)
    throttle.tick()
    now[0] += 10.0
    throttle.tick()  # behind for ever: it waits until waiting is 80% of the time, then reads on
    assert throttle.yielded == 40.0 and throttle.yielded / now[0] == 0.8
    with pytest.raises(ValueError, match="max_yield_share"):
        Throttle(1.0, max_yield_share=1.0)


def test_the_backlog_probe_says_behind_when_the_backlog_is_worth_more_than_seconds_of_publishing():
    now, clock, _ = fake_time()
    reads = iter([(0, 3000), (2000, 4000), (4000, 4500), (6000, 9000), (6000, 2000), (6000, 2500)])
    probe = BacklogProbe(lambda: next(reads), max_seconds=5.0, floor=1000, every_s=2.0, clock=clock)
    assert probe() is False and probe.baseline == 3000  # no rate yet: never behind on the first read
    now[0] += 2
    assert probe() is False  # 1,000/s published: 4,000 waiting is 4 s of it
    now[0] += 2
    assert probe() is False  # 4,500: 4.5 s
    now[0] += 1
    assert probe() is False and probe.last == 4500  # within every_s: the last answer, no new read
    now[0] += 1
    assert probe() is True and probe.last == 9000  # 9,000 at 1,000/s: 9 s behind
    now[0] += 2
    assert probe() is False  # publishing stopped (the rate falls): 2,000 waiting is under 5 s of 750/s
    now[0] += 10
    assert probe() is True  # 2,500 waiting, nothing published for 10 s (the rate ~333/s): still draining
    assert probe.times_behind == 2

    def unreadable():
        raise OSError("broker down")

    assert BacklogProbe(unreadable)() is False


def test_after_learning_the_normal_backlog_the_probe_says_behind_past_it():
    now, clock, sleep = fake_time()
    # while no check runs: a lease's sawtooth around 4,000 waiting at 1,000/s (its median, 4,000, is the normal)
    learning = [(0, 1000), (500, 4000), (1000, 7000), (1500, 4000), (2000, 3000)]
    checking = [(3000, 3900), (4000, 4100), (5000, 2000), (6000, 400)]
    reads = iter(learning + checking)
    probe = BacklogProbe(lambda: next(reads), clock=clock, sleep=sleep)
    assert probe.learn(seconds=2.0, every_s=0.5) == 4000 and probe.baseline == 1000
    now[0] += 1
    assert probe() is False  # 3,900: within its normal
    now[0] += 1
    assert probe() is True  # 4,100: ingestion drifted past its normal (the old rule waited for 5 s of it: 5,000)
    assert probe.limit(1000.0) == 4000
    now[0] += 1
    assert probe() is False
    # a tiny normal does not make a few messages "behind": at least min_seconds of publishing and the floor
    assert BacklogProbe(lambda: (0, 0), normal=10).limit(1000.0) == 500
    assert BacklogProbe(lambda: (0, 0), normal=10).limit(10.0) == 200

    def unreadable():
        raise OSError("broker down")

    blind = BacklogProbe(unreadable, clock=clock, sleep=sleep)
    assert blind.learn(seconds=1.0) is None and blind() is False  # no normal, no rate: never holds a check up


def test_runs_of_store_checks_carry_the_tag_the_run_coordinator_limits():
    assert CHECKS_TAG == LIMITED_TAG


def test_recent_days_are_compared_an_hour_slice_at_a_time_with_the_newest_hour_every_run():
    from datetime import datetime, timedelta, timezone

    from payment_platform.reconciliation.compare import TimeWindow
    from payment_platform.reconciliation.scheduled import RecentSlices, hour_slices

    day = datetime(2026, 12, 7, tzinfo=timezone.utc)
    days = [TimeWindow(day, day + timedelta(days=1)), TimeWindow(day - timedelta(days=1), day)]
    assert len(hour_slices(days)) == 48 and hour_slices(days)[0].start == day + timedelta(hours=23)
    newest = day + timedelta(hours=9, minutes=30)
    rotation, seen, position = Rotation.for_full_pass(6, 15), set(), 0
    for _ in range(rotation.runs_per_pass):
        select = RecentSlices(rotation, position, newest)
        chosen = select(days)
        assert any(w.start <= newest < w.end for w in chosen) and len(chosen) <= 3
        seen |= set(chosen)
        position = select.next_slice
    assert seen == set(hour_slices(days))

    # with the last passing run's cut: of the newest hour, only what was created since (unless the rotation takes
    # the whole hour this run)
    since = day + timedelta(hours=9, minutes=10)
    chosen = RecentSlices(rotation, 0, newest, since)(days)
    assert TimeWindow(since, day + timedelta(hours=10)) in chosen
    assert TimeWindow(day + timedelta(hours=9), day + timedelta(hours=10)) not in chosen
    newest_hour_first = hour_slices(days).index(TimeWindow(day + timedelta(hours=9), day + timedelta(hours=10)))
    chosen = RecentSlices(rotation, newest_hour_first, newest, since)(days)
    assert TimeWindow(day + timedelta(hours=9), day + timedelta(hours=10)) in chosen
    assert TimeWindow(since, day + timedelta(hours=10)) not in chosen
    old = day + timedelta(hours=8, minutes=50)  # before the newest hour: the whole hour
    assert TimeWindow(day + timedelta(hours=9), day + timedelta(hours=10)) in RecentSlices(rotation, 0, newest, old)(days)


def test_a_store_checks_postgres_queries_wait_their_turn_on_its_throttle():
    """Each Postgres query of a store check ticks the check's throttle first (as each HBase batch does), so the
    queries yield to ingestion too; the range checks' reader (no throttle) is never held up."""
    from payment_platform.reconciliation.readers import PostgresReader

    class Cursor:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def execute(self, query, params):
            executed.append(now[0])

        def fetchall(self):
            return [(7,)]

    class Connection(Cursor):
        def cursor(self):
            return Cursor()

        def close(self):
            pass

    now, clock, sleep = fake_time()
    executed: list[float] = []
    answers = iter([True, True, False])
    throttle = Throttle(1.0, clock=clock, sleep=sleep, behind=lambda: next(answers), max_yield_share=0.8)
    reader = PostgresReader(Connection, throttle=throttle)
    assert reader.count() == 7 and executed == [0.0]  # the first query starts the throttle's clock
    now[0] += 10.0
    assert reader.count() == 7 and executed == [0.0, 12.0]  # ingestion behind: two polls of 1 s before the query
    assert throttle.yielded == 2.0
    assert PostgresReader(Connection).count() == 7
