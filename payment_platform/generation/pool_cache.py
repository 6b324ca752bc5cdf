"""The party pool kept on disk between processes, so `generate` and every scheduled generation run start in
a fraction of a second instead of rebuilding 4,000 companies (Faker names, IBANs, lanes) each time.

A cache entry is keyed by everything the pool's bytes depend on: pool seed, size, the source of the modules
that build it (parties.py, identifiers.py, rails.py), the Faker and schwifty versions (names, bank
registry) and the Python version (`random`). A change to any of them is a miss, never a stale pool.

Safety:
- written atomically (a private temporary file renamed over the entry), so a reader never sees half a file;
- the payload carries its SHA-256: a truncated or corrupt entry is a miss, the pool is rebuilt and rewritten;
- entries are pickles, so only a folder owned by the current user and writable by nobody else is trusted
  (a pickle from a folder someone else can write would run their code);
- a cache folder that cannot be created or written (read-only home, private folder of another user) is not
  an error: the pool is built in memory, exactly as without a cache.

Where: $PAYMENT_PLATFORM_CACHE_DIR if set, else $XDG_CACHE_HOME/payment-platform (~/.cache/payment-platform),
else a per-user folder under the system temp dir.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

CACHE_SETTING = "PAYMENT_PLATFORM_CACHE_DIR"
FORMAT = b"payment-platform party pool v1\n"
_DIGEST_SIZE = 32
# The modules whose code decides the pool's content (relative to the package root).
_SOURCES = ("generation/parties.py", "domain/identifiers.py", "domain/rails.py")
_DISTRIBUTIONS = ("faker", "schwifty")

T = TypeVar("T")


def code_version() -> str:
    """A digest of everything besides (seed, size) that the pool's bytes depend on."""
    package_root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(FORMAT)
    for source in _SOURCES:
        digest.update(source.encode() + b"\0" + (package_root / source).read_bytes())
    for name in _DISTRIBUTIONS:
        digest.update(f"{name}=={_distribution_version(name)}\0".encode())
    digest.update(f"python {sys.version_info[0]}.{sys.version_info[1]}".encode())
    return digest.hexdigest()[:20]


def _distribution_version(name: str) -> str:
    """The installed version, from the `<name>-<version>.dist-info` folder beside the package: importing
    importlib.metadata alone costs ~0.1 s of the start-up this cache exists to save."""
    from importlib.util import find_spec

    spec = find_spec(name)
    if spec is not None and spec.origin:
        site = Path(spec.origin).parent.parent
        prefix = f"{name}-"
        for entry in os.listdir(site):
            lowered = entry.lower()
            if lowered.startswith(prefix) and lowered.endswith(".dist-info"):
                return lowered[len(prefix):-len(".dist-info")]
    from importlib import metadata

    return metadata.version(name)


def candidate_dirs(env: dict[str, str] | os._Environ = os.environ) -> list[Path]:
    if env.get(CACHE_SETTING):
        return [Path(env[CACHE_SETTING]).expanduser()]
    xdg = env.get("XDG_CACHE_HOME")
    home_cache = Path(xdg) if xdg else Path("~/.cache").expanduser()
    return [home_cache / "payment-platform",
            Path(tempfile.gettempdir()) / f"payment-platform-cache-{os.geteuid()}"]


def _trusted(path: Path) -> bool:
    """Ours alone: owned by this user and writable by no one else (a pickle from there is safe to load)."""
    try:
        info = path.stat()
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _usable_dir(path: Path) -> Path | None:
    """The folder if it exists (or can be created) and is trusted; None otherwise."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        pass
    return path if path.is_dir() and _trusted(path) else None


def entry_path(folder: Path, pool_seed: int, size: int, version: str) -> Path:
    return folder / f"party-pool-{pool_seed}-{size}-{version}.pickle"


def read_entry(path: Path) -> object | None:
    """The cached object, or None when the entry is missing, foreign, truncated or corrupt."""
    if not _trusted(path):
        return None
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head = len(FORMAT)
    if blob[:head] != FORMAT or len(blob) < head + _DIGEST_SIZE:
        return None
    digest, payload = blob[head:head + _DIGEST_SIZE], blob[head + _DIGEST_SIZE:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # noqa: BLE001 - a corrupt entry with a matching digest is unlikely; still only a miss
        return None


def write_entry(path: Path, value: object) -> bool:
    """Writes atomically (temp file + rename in the same folder); False if the folder cannot be written."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".party-pool-", suffix=".tmp", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(FORMAT + hashlib.sha256(payload).digest() + payload)
        os.replace(tmp, path)
        return True
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False


def load_or_build(pool_seed: int, size: int, build: Callable[[int, int], T], expected_type: type) -> T:
    """The pool from the first trusted cache folder holding a valid entry, else built (and cached if possible)."""
    try:
        version = code_version()
    except Exception:  # noqa: BLE001 - e.g. a zipped install without readable sources: no cache, same pool
        return build(pool_seed, size)
    folders = [folder for folder in map(_usable_dir, candidate_dirs()) if folder is not None]
    for folder in folders:
        cached = read_entry(entry_path(folder, pool_seed, size, version))
        if isinstance(cached, expected_type):
            return cached
    pool = build(pool_seed, size)
    for folder in folders:
        if write_entry(entry_path(folder, pool_seed, size, version), pool):
            _remove_stale(folder, pool_seed, size, version)
            break
    return pool


def _remove_stale(folder: Path, pool_seed: int, size: int, version: str) -> None:
    """Entries of the same pool left by an older code version would only take space."""
    keep = entry_path(folder, pool_seed, size, version).name
    for old in folder.glob(f"party-pool-{pool_seed}-{size}-*.pickle"):
        if old.name != keep:
            old.unlink(missing_ok=True)
