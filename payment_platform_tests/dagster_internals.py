"""The private Dagster APIs the tests use (the product's own are in payment_platform/defs/dagster_internals.py).

Each is here because Dagster offers no public way to do what a test checks (validate a config against a
run coordinator's schema, count tag limits as the run queue does, read a dagster.yaml as the instance does,
talk to a code server, parse the CLIs' arguments). test_dagster_internals.py pins what each one does.
"""
from __future__ import annotations

from dagster._cli import cli as dagster_cli
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
from dagster._core.remote_representation.code_location import GrpcServerCodeLocation
from dagster._daemon.cli import cli as dagster_daemon_cli
from dagster._grpc.client import DagsterGrpcClient
from dagster._utils.tags import TagConcurrencyLimitsCounter

__all__ = ["DagsterGrpcClient", "GrpcServerCodeLocation", "GrpcServerCodeLocationOrigin", "TagConcurrencyLimitsCounter",
           "dagster_cli", "dagster_daemon_cli", "dagster_instance_config", "validate_config"]
