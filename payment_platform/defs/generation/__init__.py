"""Generation: a batch of realistic payments generated and published to the Kafka topic, every minute."""
import dagster as dg

from payment_platform.defs.generation.assets import generate_payments_job, payment_batch, payments_topic
from payment_platform.defs.generation.schedules import generate_payments_every_minute

defs = dg.Definitions(
    assets=[payment_batch, payments_topic],
    jobs=[generate_payments_job],
    schedules=[generate_payments_every_minute],
)
