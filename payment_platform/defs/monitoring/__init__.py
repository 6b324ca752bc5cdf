"""Monitoring: the platform's live figures observed over time in Dagster (the terminal view is `status`)."""
import dagster as dg

from payment_platform.defs.monitoring.observe import platform_health, platform_monitoring_sensor

defs = dg.Definitions(assets=[platform_health], sensors=[platform_monitoring_sensor])
