"""Self-healing tests: private servers this folder starts and kills (an HBase gateway, a MongoDB), the shared
session stack for Kafka (a private topic), Postgres (a private schema) and Redis (a private key prefix), and
the Dagster definitions of the checks, replay and summary rooms wired to them."""
from __future__ import annotations

import signal
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from payment_platform.config import Endpoints
from payment_platform.defs.asset_keys import (
    FAILED_PAYMENT_BACKUP,
    HBASE_PAYMENTS,
    POSTGRES_PAYMENTS,
    QUARANTINE,
)
from payment_platform.defs.checks.checks import ALL_CHECKS, consistency_checks_job
from payment_platform.defs.checks.settings import ChecksSettingsResource
from payment_platform.defs.ingestion_settings import IngestionSettingsResource
from payment_platform.defs.replay.replay import backup_replay_sensor, replay_failed_payments_job
from payment_platform.defs.resources import (
    BackupResource,
    HBaseResource,
    KafkaResource,
    PostgresResource,
    RedisResource,
)
from payment_platform.defs.summaries.settlement import daily_settlement_job, daily_settlement_summary
from payment_platform.generation.generator import generate
from payment_platform.ingestion.loader import Ingestor, OffsetRange
from payment_platform.monitoring import health
from devstack.stack import processes, services
from devstack.stack.manager import free_ports
from payment_platform.stores import kafka
from payment_platform.stores.backup import FailedPaymentBackup
from payment_platform.stores.hbase import HBaseStore
from payment_platform.stores.postgres import PostgresLedger
from payment_platform.stores.redis_state import RedisState
from payment_platform_tests.waiting import wait_until


class PrivateServer:
    """One server process of ours on a fixed port and data dir: started, killed and started again."""

    def __init__(self, name: str, launch, probe, data_dir: Path, port: int):
        self.name, self.launch, self.probe, self.data_dir, self.port = name, launch, probe, data_dir, port
        self.popen: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> None:
        launch = self.launch(self.data_dir, self.port)
        self.popen = processes.spawn(launch.command, self.data_dir / f"{self.name}.log", die_with_parent=True)
        wait_until(self.probe, timeout, f"the private {self.name} answering", retry_on=(Exception,),
                   give_up=lambda: self.popen.poll() is not None and f"it exited with status {self.popen.returncode}",
                   detail=lambda: f"see {self.data_dir / (self.name + '.log')}")

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.popen = None


@pytest.fixture
def private_hbase(tmp_path):
    port = free_ports(1)[0]
    server = PrivateServer("hbase", services.hbase_launch, lambda: health.probe("hbase", Endpoints(hbase_host="127.0.0.1", hbase_port=port)),
                           tmp_path / "hbase-server", port)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def private_mongo(tmp_path):
    port = free_ports(1)[0]
    endpoints = Endpoints(mongo=f"mongodb://127.0.0.1:{port}")
    server = PrivateServer("mongo", services.mongo_launch,
                           lambda: health.probe("mongo", endpoints, backup_dir=tmp_path / "probe-fallback"),
                           tmp_path / "mongo-server", port)
    server.start()
    yield server
    server.kill()


@dataclass
class Platform:
    """One test's platform: stores, an ingestor per fault, and the Dagster definitions wired to the stores."""

    stack: object
    namespace: str
    topic: str
    hbase_port: int
    mongo_uri: str
    fallback_dir: Path

    # -- stores -------------------------------------------------------------------------------------------
    def hbase(self, port: int | None = None) -> HBaseStore:
        return HBaseStore("127.0.0.1", port or self.hbase_port, timeout_ms=3000, health_timeout_ms=1000)

    def postgres(self, dsn: str | None = None) -> PostgresLedger:
        return PostgresLedger(dsn or self.stack.endpoints.postgres, schema=self.namespace, connect_timeout_s=2)

    def backup(self) -> FailedPaymentBackup:
        return FailedPaymentBackup(self.mongo_uri, self.fallback_dir, timeout_ms=1000)

    def redis(self) -> RedisState:
        return RedisState(self.stack.endpoints.redis, key_prefix=self.namespace, timeout_s=1.0)

    def ingest(self, offset_range: OffsetRange, **stores):
        ingestor = Ingestor(self.stack.endpoints.kafka, stores.get("hbase") or self.hbase(),
                            stores.get("postgres") or self.postgres(), stores.get("backup") or self.backup(),
                            self.redis())
        try:
            return ingestor.ingest(offset_range)
        finally:
            ingestor.close()

    def publish(self, count: int, seed: int) -> list[OffsetRange]:
        """Generated payments into the private one-partition topic; returns one range per 'batch' of 20."""
        messages = list(generate(count, seed))
        with kafka.Publisher(self.stack.endpoints.kafka, self.topic) as publisher:
            for message in messages:
                publisher.send(message)
            result = publisher.flush()
        assert result.acknowledged == count
        first, end = result.offsets[0]
        self.payment_ids = [m.payment_id for m in messages]
        return [OffsetRange(self.topic, 0, s, min(s + 20, end)) for s in range(first, end, 20)]

    # -- Dagster ------------------------------------------------------------------------------------------
    def resources(self, postgres_dsn: str | None = None, hbase_port: int | None = None) -> dict:
        return {
            "hbase": HBaseResource(host="127.0.0.1", port=hbase_port or self.hbase_port, timeout_ms=3000),
            "postgres": PostgresResource(dsn=postgres_dsn or self.stack.endpoints.postgres, schema_name=self.namespace),
            "backup": BackupResource(mongo_uri=self.mongo_uri, fallback_dir=str(self.fallback_dir)),
            "kafka": KafkaResource(bootstrap_servers=self.stack.endpoints.kafka, topic=self.topic),
            "redis": RedisResource(url=self.stack.endpoints.redis, key_prefix=self.namespace),  # replay forgets keys
            # failing checks quick; every id segment and hour in each run (a full pass every 0.25 h), so a row changed
            # before an earlier passing run is named by the next one
            "checks_settings": ChecksSettingsResource(settle_seconds=0.2, full_pass_hours=0.25),
            "ingestion_settings": IngestionSettingsResource(),  # the valid date window the checks share
        }

    def definitions(self, **resource_options) -> dg.Definitions:
        stores = [dg.AssetSpec(k) for k in (HBASE_PAYMENTS, POSTGRES_PAYMENTS, FAILED_PAYMENT_BACKUP, QUARANTINE)]
        return dg.Definitions(assets=[*stores, daily_settlement_summary], asset_checks=ALL_CHECKS,
                              jobs=[consistency_checks_job, replay_failed_payments_job, daily_settlement_job],
                              sensors=[backup_replay_sensor], resources=self.resources(**resource_options))

    def run_checks(self, instance: dg.DagsterInstance) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
        """Run every check in one run; returns (asset path, check name) -> evaluation."""
        job = self.definitions().resolve_job_def(consistency_checks_job.name)
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        return {("/".join(e.asset_key.path), e.check_name): e for e in result.get_asset_check_evaluations()}

    def evaluate_replay_sensor(self, instance: dg.DagsterInstance, **resource_options):
        defs = self.definitions(**resource_options)
        context = dg.build_sensor_context(instance=instance, resources=self.resources(**resource_options),
                                          definitions=defs)
        return backup_replay_sensor(context)

    def run_replay(self, instance: dg.DagsterInstance, run_request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        job = self.definitions().resolve_job_def(replay_failed_payments_job.name)
        return job.execute_in_process(run_config=run_request.run_config, instance=instance, tags=run_request.tags,
                                      raise_on_error=False)


@pytest.fixture
def platform(stack, private_hbase, private_mongo, tmp_path):
    namespace = f"h{uuid.uuid4().hex[:10]}"
    topic = f"test-healing-{namespace}"
    kafka.ensure_topic(stack.endpoints.kafka, topic, partitions=1)
    p = Platform(stack, namespace, topic, private_hbase.port, f"mongodb://127.0.0.1:{private_mongo.port}",
                 tmp_path / "failed_payments")
    p.postgres().ensure_schema()
    p.hbase().ensure_schema()
    return p


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance
