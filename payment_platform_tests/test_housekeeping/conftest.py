"""A Dagster instance of its own for each test: a fresh database in the stack's Postgres, the project's
dagster.yaml, compute logs under the test's DAGSTER_HOME."""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

PROJECT = Path(__file__).resolve().parents[2]


def _admin_dsn(url: str, database: str = "postgres") -> str:
    base = url.replace("postgresql+psycopg2://", "postgresql://")
    head, _, tail = base.partition("?")
    return head.rsplit("/", 1)[0] + f"/{database}" + (f"?{tail}" if tail else "")


class PrivateDagster:
    def __init__(self, instance: dg.DagsterInstance, dsn: str, home: Path):
        self.instance, self.dsn, self.home = instance, dsn, home

    def row_counts(self) -> dict[str, int]:
        """Rows of the tables a run leaves behind (runs, their tags, events, asset event tags)."""
        with psycopg2.connect(self.dsn) as conn, conn.cursor() as cur:
            counts = {}
            for table in ("runs", "run_tags", "event_logs", "asset_event_tags"):
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed table names
                counts[table] = cur.fetchone()[0]
        conn.close()
        return counts


@pytest.fixture
def private_dagster(stack, tmp_path, monkeypatch):
    name = f"dagster_prune_{uuid.uuid4().hex[:10]}"
    admin = _admin_dsn(stack.dagster_postgres_url)
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = stack.dagster_postgres_url.replace("/dagster", f"/{name}", 1)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield PrivateDagster(instance, _admin_dsn(url, name), home)
    finally:
        instance.dispose()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
