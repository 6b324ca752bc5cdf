"""The demo's exact accounting of what landed where: every generated message by its own identity, its payment id
in HBase and in Postgres, in the failed-payment backup for a store it missed, or its raw bytes in quarantine.
A message is unaccounted if it is in none of those places."""
from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

ID_CHUNK = 1000
SUMMARY_KEYS = ("generated", "published", "hbase", "postgres", "backed_up", "quarantined", "duplicates", "unaccounted")


@dataclass
class Accounting:
    """Where every message of one generated batch ended up (JSON keys of the demo summary)."""

    generated: int
    published: int
    hbase: int  # distinct payment ids of the batch found in HBase
    postgres: int  # ... in Postgres
    backed_up: int  # messages kept in the failed-payment backup for a store they are missing from
    quarantined: int  # messages whose raw bytes are in quarantine
    duplicates: int  # messages reusing an earlier payment id of the batch (deduplicated, not lost)
    unaccounted: int  # messages found nowhere
    unaccounted_sample: list[str]

    def as_summary(self) -> dict:
        return asdict(self)

    @property
    def complete(self) -> bool:
        return self.unaccounted == 0 and self.published == self.generated


def _chunks(items: Sequence[str], size: int = ID_CHUNK) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _present(lookup: Callable[[Sequence[str]], set], ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(ids):
        found |= {str(i) for i in lookup(list(chunk))}
    return found


def _is_uuid(text: str | None) -> bool:
    try:
        uuid.UUID(str(text))
        return True
    except (ValueError, TypeError, AttributeError):
        return False


def account(messages: Sequence, published: int, hbase, ledger, backup) -> Accounting:
    """Account for every message (GeneratedMessage: value bytes, payment_id) across the stores."""
    ids = sorted({m.payment_id for m in messages if _is_uuid(m.payment_id)})
    in_hbase = _present(hbase.existing_ids, ids)
    in_postgres = _present(ledger.existing_ids, ids)
    backed = {store: _present(lambda chunk, s=store: backup.stored_ids(s, chunk), ids) for store in ("hbase", "postgres")}
    quarantined_raw = {bytes(row["raw"]) for row in ledger.quarantined(limit=max(1, ledger.count_quarantine()))}

    seen: set[str] = set()
    counts = {"backed_up": 0, "quarantined": 0, "duplicates": 0}
    unaccounted: list[str] = []
    for message in messages:
        pid = message.payment_id
        if message.value in quarantined_raw:
            counts["quarantined"] += 1
            continue
        stores_ok = pid in ids and all(
            pid in present or pid in backed[store]
            for store, present in (("hbase", in_hbase), ("postgres", in_postgres)))
        if pid in seen and stores_ok:
            counts["duplicates"] += 1
        elif stores_ok:
            if pid not in in_hbase or pid not in in_postgres:
                counts["backed_up"] += 1
        else:
            unaccounted.append(str(pid))
        seen.add(pid)
    return Accounting(generated=len(messages), published=published, hbase=len(in_hbase), postgres=len(in_postgres),
                      backed_up=counts["backed_up"], quarantined=counts["quarantined"],
                      duplicates=counts["duplicates"], unaccounted=len(unaccounted),
                      unaccounted_sample=unaccounted[:10])
