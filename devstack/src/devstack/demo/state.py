"""The demo's options and the state its steps share."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from payment_platform.config import parse_number

if TYPE_CHECKING:
    from payment_platform.generation.generator import GeneratedMessage
    from devstack.stack.dagster_process import DagsterDaemon
    from devstack.stack.manager import Stack


@dataclass
class DemoOptions:
    count: int
    seed: int
    data_dir: Path | None  # None: a temporary folder, removed afterwards
    keep_stack: bool = False

    @classmethod
    def from_args(cls, args) -> "DemoOptions":
        return cls(count=parse_number("--count", args.count, 1, kind=int),
                   seed=parse_number("--seed", args.seed, kind=int),
                   data_dir=Path(args.data_dir).expanduser().absolute() if args.data_dir else None,
                   keep_stack=bool(args.keep_stack))


@dataclass
class DemoRun:
    """What the steps share: each reads what earlier steps set and records what it did in `summary`."""

    options: DemoOptions
    summary: dict = field(default_factory=dict)
    stack: Stack | None = None  # set by "start stack"
    temporary_dir: Path | None = None  # the data dir made for this demo (no --data-dir), removed at the end
    log: Callable[[str], None] = print
    daemon: DagsterDaemon | None = None  # set by "start dagster-daemon", cleared when it stops
    messages: list[GeneratedMessage] = field(default_factory=list)  # the demo batch, set by "generate and publish"
    published: int = 0  # messages of the batch the broker acknowledged
    published_at: float | None = None  # time.monotonic() when the batch was published


class DemoStepFailed(RuntimeError):
    pass
