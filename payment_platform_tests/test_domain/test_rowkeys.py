"""Row keys: the unsalted layout unchanged, the salted one a stable, pure function of the payment id."""
import random
import uuid
import zlib

import pytest

from payment_platform.domain.rowkeys import (
    check_salt_buckets,
    hbase_shell_create,
    payment_id_of,
    row_key,
    salt_bucket,
    salt_prefixes,
    salted,
    split_keys,
    time_key,
    unsalted,
)
from payment_platform_tests.test_stores.payments import record


def test_unsalted_layout_is_the_time_first_key():
    p = record(7).payment
    key = row_key(p)
    assert key == row_key(p, 0) == time_key(p)
    assert key.startswith(b"20261124140002_SEPA_PTY-")
    assert payment_id_of(key) == p.payment_id


def test_salted_key_is_a_two_digit_bucket_then_the_time_key():
    p = record(7).payment
    key = row_key(p, 8)
    bucket = zlib.crc32(p.payment_id.encode()) % 8
    assert key == f"{bucket:02d}_".encode() + time_key(p)
    assert unsalted(key, 8) == time_key(p) and payment_id_of(key) == p.payment_id
    assert salted(time_key(p), p.payment_id, 8) == key and salted(time_key(p), p.payment_id, 0) == time_key(p)


def test_bucket_is_stable_and_case_blind():
    # a fixed value: the bucket must never change between processes, Python versions or releases
    assert salt_bucket("6f1c1c3e-0b5e-4f49-9d0e-3f1f6b0c9a11", 8) == zlib.crc32(
        b"6f1c1c3e-0b5e-4f49-9d0e-3f1f6b0c9a11") % 8
    pid = str(uuid.uuid4())
    assert salt_bucket(pid, 16) == salt_bucket(pid.upper(), 16)


def test_buckets_spread_evenly():
    rng = random.Random(4)
    counts = [0] * 8
    for _ in range(8000):
        counts[salt_bucket(str(uuid.UUID(int=rng.getrandbits(128), version=4)), 8)] += 1
    assert min(counts) > 850 and max(counts) < 1150, counts


def test_prefixes_and_splits_follow_key_order():
    assert salt_prefixes(0) == [b""]
    assert salt_prefixes(3) == [b"00_", b"01_", b"02_"]
    assert split_keys(0) == [] and split_keys(1) == [] and split_keys(4) == [b"01_", b"02_", b"03_"]
    assert salt_prefixes(12) == sorted(salt_prefixes(12))  # two digits: lexical order is numeric order


@pytest.mark.parametrize("bad", [-1, 100, 2.5, "8", True])
def test_bad_bucket_counts_are_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match="HBASE_SALT_BUCKETS"):
        check_salt_buckets(bad)


def test_hbase_shell_pre_splits_the_salted_table():
    shell = hbase_shell_create(4)
    assert "create 'payments', {NAME => 'cf', VERSIONS => 1}, SPLITS => ['01_', '02_', '03_']" in shell
    assert "create 'payments_by_id', {NAME => 'cf', VERSIONS => 1}, SPLITS => ['4', '8', 'c']" in shell
    assert "SPLITS" not in hbase_shell_create(0)
