"""When the replay sensor asks for a run (pure decision, no servers)."""
from payment_platform.replay.scheduling import RETRY_BUCKET_S, plan_replay


def down():
    raise ConnectionRefusedError("connection refused")


def test_empty_backup_means_no_replay():
    plan = plan_replay(lambda: {"hbase": 0, "postgres": 0}, lambda s: [], {"hbase": lambda: None, "postgres": lambda: None})
    assert plan.stores == [] and plan.reason == "the backup is empty"


def test_only_healthy_stores_with_payments_are_replayed():
    plan = plan_replay(lambda: {"hbase": 3, "postgres": 2}, lambda s: [f"{s}-oldest"],
                       {"hbase": down, "postgres": lambda: {"ok": True}})
    assert plan.stores == ["postgres"]
    assert "hbase: 3 waiting but unhealthy" in plan.reason and "postgres: 2 waiting, healthy" in plan.reason


def test_a_store_still_down_means_no_attempt():
    plan = plan_replay(lambda: {"hbase": 3, "postgres": 0}, lambda s: [], {"hbase": down, "postgres": down})
    assert plan.stores == []
    assert "unhealthy" in plan.reason


def test_backup_unreadable_is_explained():
    def boom():
        raise TimeoutError("mongo did not answer")
    plan = plan_replay(boom, lambda s: [], {})
    assert plan.stores == [] and "backup unreadable" in plan.reason


def test_run_key_is_stable_for_one_backlog_state_within_a_bucket():
    healthy = {"hbase": lambda: None, "postgres": lambda: None}
    plan = plan_replay(lambda: {"hbase": 3, "postgres": 0}, lambda s: ["p1"], healthy)
    same = plan_replay(lambda: {"hbase": 3, "postgres": 0}, lambda s: ["p1"], healthy)
    assert plan.run_key(1000.0) == same.run_key(1000.0 + 1)
    assert plan.run_key(1000.0) != plan.run_key(1000.0 + RETRY_BUCKET_S)  # retried after a while, never a storm
    changed = plan_replay(lambda: {"hbase": 4, "postgres": 0}, lambda s: ["p1"], healthy)
    assert changed.run_key(1000.0) != plan.run_key(1000.0)
