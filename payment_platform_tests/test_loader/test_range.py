"""OffsetRange and RangeResult: plain logic, no services."""
import pytest

from payment_platform.ingestion.loader import OffsetRange, RangeResult

METADATA_KEYS = {"topic", "partition", "start_offset", "end_offset", "messages", "written_hbase", "written_postgres",
                 "written_redis", "backed_up_hbase", "backed_up_postgres", "backed_up", "backed_up_to_files",
                 "quarantined", "poison_isolated", "duplicates_skipped", "redis_errors", "redis_stale", "rate_msgs_per_s", "seconds",
                 "progress_recorded"}


def test_offset_range_is_a_frozen_half_open_interval():
    rng = OffsetRange("payments", 2, 10, 25)
    assert rng.size == 15 and str(rng) == "payments[2] [10, 25)"
    with pytest.raises(AttributeError):
        rng.start = 0  # frozen
    assert OffsetRange("payments", 0, 5, 5).size == 0


@pytest.mark.parametrize("args", [("", 0, 0, 1), ("t", -1, 0, 1), ("t", 0, -1, 1), ("t", 0, 5, 4)])
def test_offset_range_refuses_nonsense(args):
    with pytest.raises(ValueError):
        OffsetRange(*args)


def test_metadata_has_stable_keys_and_totals():
    result = RangeResult(OffsetRange("t", 1, 0, 100), messages=100, quarantined=3, duplicates_skipped=7,
                         seconds=2.0)
    result.written.update(hbase=88, postgres=90, redis=90)
    result.backed_up.update(hbase=2)
    meta = result.as_metadata()
    assert set(meta) == METADATA_KEYS
    assert (meta["backed_up"], meta["rate_msgs_per_s"], meta["written_hbase"]) == (2, 50.0, 88)
    assert RangeResult(OffsetRange("t", 0, 0, 0)).as_metadata()["rate_msgs_per_s"] == 0.0


def test_the_first_chunk_is_split_so_the_stores_start_early():
    from payment_platform.ingestion.loader import _small_first

    assert list(_small_first(iter([[1, 2, 3, 4, 5], [6, 7]]), 2)) == [[1, 2], [3, 4, 5], [6, 7]]
    assert list(_small_first(iter([[1, 2], [3]]), 2)) == [[1, 2], [3]]
    assert list(_small_first(iter([]), 2)) == []


def test_stopping_early_releases_the_reader():
    from payment_platform.ingestion.loader import _small_first

    released = []

    def reader():
        try:
            yield [1, 2, 3]
            yield [4]
        finally:
            released.append(True)

    chunks = _small_first(reader(), 1)
    assert next(chunks) == [1]
    chunks.close()
    assert released == [True]
