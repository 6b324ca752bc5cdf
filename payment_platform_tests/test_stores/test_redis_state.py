"""RedisState against the embedded Redis: idempotency keys and live metrics."""
from collections import Counter
from decimal import Decimal

import pytest
import redis

from payment_platform.stores.redis_state import ChunkMetrics, RedisState

pytestmark = pytest.mark.stack


def test_landed_ids_round_trip(redis_state):
    assert redis_state.landed_ids(["a", "b"]) == set()
    assert redis_state.mark_landed(["a", "b"]) == 2
    assert redis_state.mark_landed(["b", "c"]) == 1
    assert redis_state.landed_ids(["a", "b", "c", "d"]) == {"a", "b", "c"}
    ttl = redis_state.client().ttl(redis_state.key("landed", "a"))
    assert 0 < ttl <= redis_state.landed_ttl_s


class _RefusedScript:
    """A server answering scripts with `error` (a Redis Cluster says CROSSSLOT for keys in different slots)."""

    def __init__(self, error: str):
        self.error = error

    def __call__(self, keys, args):
        raise redis.ResponseError(self.error)


def test_mark_landed_falls_back_to_a_pipeline_where_scripts_are_refused(redis_state):
    redis_state.client()
    redis_state._mark_script = _RefusedScript("CROSSSLOT Keys in request don't hash to the same slot")
    assert redis_state.mark_landed(["x", "y"]) == 2
    assert redis_state.mark_landed(["y", "z"]) == 1  # the pipeline path from now on, same answers
    assert redis_state.landed_ids(["x", "y", "z", "w"]) == {"x", "y", "z"}
    assert 0 < redis_state.client().ttl(redis_state.key("landed", "z")) <= redis_state.landed_ttl_s


def test_mark_landed_does_not_hide_other_script_errors(redis_state):
    redis_state._mark_script = _RefusedScript("OOM command not allowed when used memory > 'maxmemory'")
    with pytest.raises(redis.ResponseError, match="OOM"):
        redis_state.mark_landed(["q"])


def test_metrics_accumulate_under_stable_keys(redis_state):
    now = 1_800_000_000.0
    for _ in range(2):
        redis_state.record_chunk(ChunkMetrics(
            processed=10, duplicates=2, quarantined=1, errors=1, seconds=0.5, backed_up=Counter(hbase=3),
            by_rail=Counter(ACH=6, SEPA=4), by_currency=Counter(USD=6, EUR=4),
            amount_by_currency={"USD": Decimal("100.50")}), now=now)
    m = redis_state.metrics()
    assert (m["processed"], m["duplicates"], m["quarantined"], m["errors"]) == (20, 4, 2, 2)
    assert m["backed_up"] == {"hbase": 6} and m["by_rail"] == {"ACH": 12, "SEPA": 8}
    assert m["amount_by_currency"]["USD"] == pytest.approx(201.0)
    assert m["avg_processing_ms"] == pytest.approx(50.0) and m["last_processing_ms"] == pytest.approx(50.0)
    assert redis_state.rate(60, now=now) == pytest.approx(20 / 60)
    assert redis_state.client().get(redis_state.key("metrics", "processed")) == b"20"


def test_health(redis_state, unused_port):
    assert redis_state.health()["redis_version"]
    dead = RedisState(f"redis://127.0.0.1:{unused_port}/0", timeout_s=0.5)
    with pytest.raises(redis.RedisError):
        dead.health()
