"""dagster.yaml plus DAGSTER_POSTGRES_URL give a working Dagster instance whose runs live in Postgres."""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.stack


@dg.asset
def tiny_number() -> int:
    return 42


def test_dagster_yaml_stores_runs_in_the_embedded_postgres(stack, tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", stack.dagster_postgres_url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        result = dg.materialize([tiny_number], instance=instance)
        assert result.success
        run_id = result.run_id
        assert instance.get_run_by_id(run_id).is_success

    # The run is really in the `dagster` database of the stack's Postgres, not in a local file.
    dsn = stack.dagster_postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("select status from runs where run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
    conn.close()
    assert not (home / "history").exists() or not any((home / "history").glob("**/*.db"))
