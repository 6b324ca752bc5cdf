"""The replay sensor never requests a second run while one is in flight (no storm), without touching a store."""
import dagster as dg

from payment_platform.defs.replay.replay import backup_replay_sensor, replay_failed_payments_job
from payment_platform.defs.resources import BackupResource, HBaseResource, PostgresResource

# Nothing listens on these: the sensor must decide before it probes anything.
RESOURCES = {"hbase": HBaseResource(host="127.0.0.1", port=1), "postgres": PostgresResource(dsn="postgresql://x@127.0.0.1:1/x"),
             "backup": BackupResource(mongo_uri="mongodb://127.0.0.1:1", fallback_dir="/nonexistent")}


def test_a_replay_in_flight_means_skip():
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(replay_failed_payments_job, run_config={}, status=dg.DagsterRunStatus.STARTED)
        context = dg.build_sensor_context(instance=instance, resources=RESOURCES)
        result = backup_replay_sensor(context)
        assert isinstance(result, dg.SkipReason)
        assert run.run_id in result.skip_message and "in flight" in result.skip_message


def test_mongo_unreachable_is_said_in_the_skip_reason():
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={
            **RESOURCES, "backup": BackupResource(mongo_uri="mongodb://127.0.0.1:1", fallback_dir="/proc/forbidden")})
        result = backup_replay_sensor(context)
        assert isinstance(result, dg.SkipReason)
        assert "MongoDB unreachable" in result.skip_message
