"""The four store resources, configured from the environment exactly as Definitions wires them."""
import dagster as dg
import pytest

from payment_platform.defs.resources import defs as resource_defs
from payment_platform.ingestion.loader import Ingestor

pytestmark = pytest.mark.stack


def test_resources_from_env_build_healthy_clients(stack_env):
    resources = resource_defs.resources
    with dg.build_resources({k: resources[k] for k in ("kafka", "hbase", "postgres", "backup", "redis")}) as built:
        clients = {name: getattr(built, name).client() for name in ("hbase", "postgres", "backup", "redis")}
        try:
            assert clients["hbase"].port == int(stack_env["HBASE_PORT"])
            for client in clients.values():
                assert client.health()
            assert str(clients["backup"].fallback_dir).startswith(stack_env["PAYMENT_PLATFORM_DATA_DIR"])
            ingestor = Ingestor.from_resources(built.kafka, built.hbase, built.postgres, built.backup, built.redis)
            assert ingestor.kafka_bootstrap == stack_env["KAFKA_BOOTSTRAP_SERVERS"]
            ingestor.close()
        finally:
            for client in clients.values():
                client.close()
