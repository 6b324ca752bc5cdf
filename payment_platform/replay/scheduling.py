"""When to replay: pure decision over the backup's size and the stores' health probes (no Dagster).

A store is replayed when the backup holds payments for it AND its health probe passes. Any probe that fails
or times out only removes that store; the reason says what was seen, so a SkipReason explains itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

RETRY_BUCKET_S = 300  # an unchanged backlog is requested again at most every 5 minutes


@dataclass
class ReplayPlan:
    stores: list[str]
    reason: str
    sizes: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, str] = field(default_factory=dict)

    def run_key(self, now: float) -> str:
        """Stable for one backlog state (sizes and oldest payment) within a retry bucket: no duplicate runs."""
        state = ",".join(f"{s}={self.sizes.get(s, 0)}:{self.oldest.get(s, '')}" for s in self.stores)
        return f"replay:{state}:{int(now // RETRY_BUCKET_S)}"


def plan_replay(sizes: Callable[[], Mapping[str, int]], oldest: Callable[[str], list[str]],
                health: Mapping[str, Callable[[], object]]) -> ReplayPlan:
    try:
        held = {store: int(n) for store, n in sizes().items()}
    except Exception as error:  # noqa: BLE001 - reported in the skip reason
        return ReplayPlan([], f"backup unreadable: {type(error).__name__}: {error}")
    waiting = [store for store, n in held.items() if n > 0]
    if not waiting:
        return ReplayPlan([], "the backup is empty", held)
    healthy, notes, first = [], [], {}
    for store in waiting:
        try:
            health[store]()
        except Exception as error:  # noqa: BLE001 - a store still down: no attempt
            notes.append(f"{store}: {held[store]} waiting but unhealthy ({type(error).__name__}: {error})")
            continue
        healthy.append(store)
        try:
            ids = oldest(store)
            first[store] = ids[0] if ids else ""
        except Exception:  # noqa: BLE001 - the run key is still stable enough without it
            first[store] = ""
        notes.append(f"{store}: {held[store]} waiting, healthy")
    return ReplayPlan(healthy, "; ".join(notes), held, first)
