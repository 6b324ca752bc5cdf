"""The party pool's disk cache: a hit gives the very pool (and bytes) a build gives; anything doubtful is a miss."""
import os
import pwd

import pytest

from payment_platform.generation import pool_cache
from payment_platform.generation.generator import generate
from payment_platform.generation.parties import PartyPool, build_pool, construct_pool
from payment_platform.generation.settings import GenerationSettings

SEED, SIZE = 7, 60  # a small pool: built in well under a second


def never_build(seed, size):
    raise AssertionError("the pool should have come from the cache")


def counting_build(calls):
    def build(seed, size):
        calls.append((seed, size))
        return construct_pool(seed, size)
    return build


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(pool_cache.CACHE_SETTING, str(folder))
    build_pool.cache_clear()
    yield folder
    build_pool.cache_clear()


def entry(folder):
    (path,) = folder.glob("party-pool-*.pickle")
    return path


def test_a_cached_pool_equals_the_built_one_and_gives_the_same_bytes(cache_dir):
    settings = GenerationSettings(parties=SIZE, pool_seed=SEED, bad_fraction=0.1)
    cold = [m.value for m in generate(800, 3, settings)]  # builds and writes the cache
    assert entry(cache_dir).name.startswith(f"party-pool-{SEED}-{SIZE}-")
    assert oct(cache_dir.stat().st_mode & 0o777) == "0o700"
    build_pool.cache_clear()
    warm = [m.value for m in generate(800, 3, settings)]
    assert warm == cold
    assert pool_cache.load_or_build(SEED, SIZE, never_build, PartyPool) == construct_pool(SEED, SIZE)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte", "garbage"])
def test_a_corrupt_entry_is_rebuilt_and_rewritten(cache_dir, damage):
    pool_cache.load_or_build(SEED, SIZE, construct_pool, PartyPool)
    path = entry(cache_dir)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip_byte":
        path.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    else:
        path.write_bytes(b"not a pool")
    calls = []
    assert pool_cache.load_or_build(SEED, SIZE, counting_build(calls), PartyPool) == construct_pool(SEED, SIZE)
    assert calls == [(SEED, SIZE)]
    assert pool_cache.load_or_build(SEED, SIZE, never_build, PartyPool) == construct_pool(SEED, SIZE)


def test_a_folder_that_cannot_be_created_only_means_no_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv(pool_cache.CACHE_SETTING, str(blocker / "cache"))
    calls = []
    for _ in range(2):
        assert pool_cache.load_or_build(SEED, SIZE, counting_build(calls), PartyPool) == construct_pool(SEED, SIZE)
    assert len(calls) == 2


@pytest.mark.parametrize("weakness", ["group_writable", "other_owner"])
def test_a_folder_others_could_write_is_never_read_nor_written(cache_dir, weakness):
    pool_cache.load_or_build(SEED, SIZE, construct_pool, PartyPool)
    path = entry(cache_dir)
    if weakness == "group_writable":
        cache_dir.chmod(0o770)
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a folder's owner needs root (CI runs as root)")
        nobody = pwd.getpwnam("nobody")
        os.chown(cache_dir, nobody.pw_uid, nobody.pw_gid)
    before = path.stat().st_mtime_ns
    calls = []
    pool_cache.load_or_build(SEED, SIZE, counting_build(calls), PartyPool)
    assert calls == [(SEED, SIZE)]  # a pickle from there could run someone else's code: not loaded
    assert path.stat().st_mtime_ns == before


def test_another_code_version_is_a_miss(cache_dir, monkeypatch):
    pool_cache.load_or_build(SEED, SIZE, construct_pool, PartyPool)
    monkeypatch.setattr(pool_cache, "code_version", lambda: "another-version")
    calls = []
    pool_cache.load_or_build(SEED, SIZE, counting_build(calls), PartyPool)
    assert calls == [(SEED, SIZE)]
    assert entry(cache_dir).name.endswith("-another-version.pickle")  # the stale entry was removed
