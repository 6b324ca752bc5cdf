"""Backfill of the party indexes (`payments_by_originator`, `payments_by_beneficiary`) for payments stored before
ingestion wrote them: one pass over `payments`, index rows put in batches with the same keys and cells ingestion
writes, so running it twice, or beside live ingestion, changes nothing."""
from __future__ import annotations

import time
from typing import Callable

from payment_platform.domain.rowkeys import payment_id_of, stamp_in_row_key
from payment_platform.stores.hbase import Q_BENEFICIARY_ID, Q_ORIGINATOR_ID, Q_PAYMENT_ID


def backfill_party_index(hbase, batch_size: int = 2000,
                         progress: Callable[[int, float], None] | None = None) -> dict:
    """Index every payment row of `hbase`; returns {"payments": n, "skipped": rows without party ids, "seconds"}."""
    started = time.monotonic()
    done = skipped = 0
    batch: list[tuple[bytes, str, str, str, str]] = []
    for key, cells in hbase.scan_time_window(None, None, columns=[Q_PAYMENT_ID, Q_ORIGINATOR_ID, Q_BENEFICIARY_ID],
                                             batch_size=batch_size):
        if Q_ORIGINATOR_ID not in cells or Q_BENEFICIARY_ID not in cells:
            skipped += 1
            continue
        payment_id = cells[Q_PAYMENT_ID].decode() if Q_PAYMENT_ID in cells else payment_id_of(key)
        batch.append((key, payment_id, cells[Q_ORIGINATOR_ID].decode(), cells[Q_BENEFICIARY_ID].decode(),
                      stamp_in_row_key(key)))
        if len(batch) >= batch_size:
            done += hbase.write_party_index(batch)
            batch = []
            if progress is not None:
                progress(done, time.monotonic() - started)
    done += hbase.write_party_index(batch)
    return {"payments": done, "skipped": skipped, "seconds": round(time.monotonic() - started, 3)}
