"""Generated traffic (the generation engineer's generator and publisher), labelled bad records included."""
import pytest

from payment_platform.generation.generator import generate
from payment_platform.generation.settings import QUARANTINE_DEFECTS, GenerationSettings
from payment_platform.ingestion.loader import OffsetRange
from payment_platform.stores import kafka

pytestmark = pytest.mark.stack


def test_generated_batch_with_labelled_defects_is_fully_accounted_for(lane):
    messages = list(generate(600, seed=7, settings=GenerationSettings(bad_fraction=0.1, key_strategy="none")))
    with kafka.Publisher(lane.bootstrap, lane.topic) as publisher:
        published = publisher.publish(messages)
    first, end = published.offsets[0]
    ingestor = lane.ingestor()
    result = ingestor.ingest(OffsetRange(lane.topic, 0, first, end), chunk_size=128)

    to_quarantine = [m for m in messages if m.defect in QUARANTINE_DEFECTS]
    duplicated = [m for m in messages if m.defect == "duplicate_payment_id"]
    good_ids = {m.payment_id for m in messages if m.defect is None}
    assert to_quarantine and duplicated  # the batch really holds both kinds
    assert result.quarantined == len(to_quarantine)
    assert result.duplicates_skipped == len(duplicated)
    assert result.written["hbase"] == result.written["postgres"] == len(good_ids)
    assert result.messages == result.quarantined + result.duplicates_skipped + result.written["postgres"]
    assert ingestor.postgres.existing_ids(good_ids) == good_ids
    assert ingestor.hbase.existing_ids(good_ids) == good_ids
    labels = sorted(q["defect_label"] for q in ingestor.postgres.quarantined(limit=1000))
    assert labels == sorted(m.defect for m in to_quarantine)  # every labelled bad record, and nothing else
