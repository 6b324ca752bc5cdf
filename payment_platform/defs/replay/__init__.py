"""Replay of the failed-payment backup: the job and the health-gated sensor that starts it."""
import dagster as dg

from payment_platform.defs.replay.replay import backup_replay_sensor, replay_failed_payments_job

defs = dg.Definitions(jobs=[replay_failed_payments_job], sensors=[backup_replay_sensor])
