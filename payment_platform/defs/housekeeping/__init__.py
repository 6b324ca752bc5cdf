"""Housekeeping: Dagster's own storage kept bounded (finished ingestion and replay runs pruned on a schedule)."""
import dagster as dg

from payment_platform.defs.housekeeping.pruning import prune_dagster_runs_job, prune_dagster_runs_schedule

defs = dg.Definitions(jobs=[prune_dagster_runs_job], schedules=[prune_dagster_runs_schedule])
