"""`payment-platform scaling`: the scaling knobs in effect, and what a real deployment needs for them.

Prints the validated knobs (config.Scaling), the run coordinator's limits for dagster.yaml or the Helm chart,
and the HBase shell commands that create the tables pre-split for the row-key layout (Thrift1 cannot).
"""
from __future__ import annotations

import argparse
import json

from payment_platform.config import SCALING_VARS, scaling_from_env
from payment_platform.domain.rowkeys import hbase_shell_create
from payment_platform.scaling.run_limits import run_coordinator_limits


def register(subparsers) -> None:
    parser = subparsers.add_parser("scaling", help="show the scaling knobs and the HBase pre-split commands",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print the knobs as JSON")
    parser.add_argument("--hbase-shell", action="store_true",
                        help="print only the HBase shell commands creating the pre-split tables")
    parser.set_defaults(func=run)


def run(args) -> int:
    import yaml  # here, not at import: registering this command must not slow every other command's start-up

    scaling = scaling_from_env()  # a malformed knob: ConfigError naming it (exit 2)
    shell = hbase_shell_create(scaling.hbase_salt_buckets)
    if args.hbase_shell:
        print(shell)
        return 0
    if args.json:
        print(json.dumps({"knobs": scaling.to_env(), "run_coordinator": run_coordinator_limits(scaling),
                          "hbase_shell": shell.splitlines()}, indent=2))
        return 0
    print("scaling knobs (environment, defaults where unset):")
    for name, value in scaling.to_env().items():
        print(f"  {name}={value}    # {SCALING_VARS[name]}")
    print("\nrun coordinator (dagster.yaml run_coordinator.config / Helm dagsterDaemon.runCoordinator.config):")
    print("  " + yaml.safe_dump(run_coordinator_limits(scaling), sort_keys=False).replace("\n", "\n  ").rstrip())
    print("\nHBase tables, pre-split for this layout (hbase shell, once, before the first ingestion):")
    print("  " + shell.replace("\n", "\n  "))
    return 0
