"""Resources shared by every room, configured from the environment with EnvVar."""
import dagster as dg

from payment_platform.stores.backup import BackupResource
from payment_platform.stores.hbase import HBaseResource
from payment_platform.stores.kafka import KafkaResource
from payment_platform.stores.postgres import PostgresResource
from payment_platform.stores.redis_state import RedisResource

defs = dg.Definitions(resources={
    "kafka": KafkaResource(bootstrap_servers=dg.EnvVar("KAFKA_BOOTSTRAP_SERVERS"), topic=dg.EnvVar("PAYMENTS_TOPIC")),
    "hbase": HBaseResource(host=dg.EnvVar("HBASE_HOST"), port=dg.EnvVar.int("HBASE_PORT"),
                           transport=dg.EnvVar("HBASE_TRANSPORT"), protocol=dg.EnvVar("HBASE_PROTOCOL")),
    "postgres": PostgresResource(dsn=dg.EnvVar("POSTGRES_DSN")),
    "backup": BackupResource(mongo_uri=dg.EnvVar("MONGO_URI")),
    "redis": RedisResource(url=dg.EnvVar("REDIS_URL")),
})
