"""Names shared by the ingestion job and the sensor that requests its runs."""
from __future__ import annotations

import dagster as dg

INGEST_RANGE_ASSET = "ingest_payments_range"
INGEST_JOB_NAME = "ingest_payments_range_job"  # one range (a person's Materialize, a Launchpad run)
LEASE_JOB_NAME = "ingest_partition_lease_job"  # one partition for a lease: what the sensor launches
LEASE_OP_NAME = "ingest_partition_lease"
RANGE_TAG = "payment_platform/range"  # the planner's run key of the range attempt or lease; kept by run retries
PARTITION_TAG = "payment_platform/partition"
IN_FLIGHT_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                      dg.DagsterRunStatus.STARTED]
RUN_RETRIES = 2  # Dagster run retries (dagster.yaml enables run_retries), each after the op's own retries


def range_run_config(topic: str, partition: int, start: int, end: int) -> dict:
    """Run config of the ingestion job for the range [start, end) of one partition."""
    return {"ops": {INGEST_RANGE_ASSET: {"config": {"topic": topic, "partition": partition, "start": start,
                                                     "end": end}}}}


def lease_run_config(topic: str, partition: int, start_offset: int) -> dict:
    """Run config of the lease job for one partition (`start_offset`: the progress when requested, for people)."""
    return {"ops": {LEASE_OP_NAME: {"config": {"topic": topic, "partition": partition, "start_offset": start_offset}}}}
