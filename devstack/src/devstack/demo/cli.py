"""`payment-platform demo`."""
from __future__ import annotations

from devstack.stack.console import add_data_dir, ensure_runtime_dir


def register(subparsers) -> None:
    """Adds `demo`; its handler returns the exit status."""
    demo = subparsers.add_parser("demo", help="the main flow, headless, ending with a summary")
    add_data_dir(demo, default_help="data dir (default: a temporary folder, removed afterwards)")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo.add_argument("--keep-stack", action="store_true",
                      help="leave the services running (stop them with `payment-platform stack down --data-dir DIR`)")
    demo.add_argument("--count", default="1000", help="number of payments to generate (default 1000)")
    demo.add_argument("--seed", default="42", help="random seed of the generator (default 42)")
    demo.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from devstack.demo.run import main as demo_main

    ensure_runtime_dir()
    return demo_main(args)
