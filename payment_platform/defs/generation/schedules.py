"""Every minute, one batch; the tick's scheduled time seeds it, so re-running a tick gives the same payments."""
from __future__ import annotations

from datetime import datetime

import dagster as dg

from payment_platform.defs.generation.assets import DEFAULT_BATCH_SIZE, generate_payments_job

BATCH_OP = "generation__payment_batch"  # the op name Dagster derives from the asset key


def tick_run_config(scheduled: datetime, count: int = DEFAULT_BATCH_SIZE) -> dict:
    """Run config of the batch for one tick: seed = the tick's epoch second, timestamps start at the tick."""
    return {"ops": {BATCH_OP: {"config": {"count": count, "seed": int(scheduled.timestamp()),
                                          "start": scheduled.isoformat()}}}}


@dg.schedule(job=generate_payments_job, cron_schedule="* * * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Generate and publish a batch of payments every minute (batch size: run config `count`). "
                         "Off by default: turn it on in the UI or with `dagster schedule start`.")
def generate_payments_every_minute(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time
    return dg.RunRequest(run_key=f"generate:{scheduled.isoformat()}", run_config=tick_run_config(scheduled),
                         tags={"payment_platform/seed": str(int(scheduled.timestamp()))})
