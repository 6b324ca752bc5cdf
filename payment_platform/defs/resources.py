"""Resources shared by every room, configured from the environment with EnvVar."""
import dagster as dg

from payment_platform.stores.kafka import KafkaResource

defs = dg.Definitions(resources={
    "kafka": KafkaResource(bootstrap_servers=dg.EnvVar("KAFKA_BOOTSTRAP_SERVERS"), topic=dg.EnvVar("PAYMENTS_TOPIC")),
})
