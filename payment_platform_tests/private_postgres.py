"""A private PostgreSQL started the way the stack starts its own (cluster preparation, binaries, launch settings),
for tests that crash it, or that check where its cluster lives."""
from __future__ import annotations

import time

from devstack.stack import services
from devstack.stack.processes import spawn


def start_postgres(data_dir, port):
    """A private PostgreSQL (the stack's own binaries and launch settings) that this test may crash."""
    user = services.postgres_prepare(data_dir)
    launch = services.postgres_launch(data_dir, port, user)
    dsn = services.postgres_url(port, "postgres")
    deadline = time.monotonic() + 40
    process = spawn(launch.command, data_dir / "postgres.log", user=launch.user, die_with_parent=True)
    while True:
        try:
            services.postgres_probe(dsn)
            return process, dsn
        except Exception:  # noqa: BLE001 - not up yet: polled until the deadline
            if time.monotonic() > deadline:
                process.kill()
                log = (data_dir / "postgres.log").read_text()[-2000:]
                raise RuntimeError(f"private Postgres did not start: {log}") from None
            if process.poll() is not None:
                # after a crash, the old server's last backends may still hold its shared memory for a moment
                time.sleep(0.5)
                process = spawn(launch.command, data_dir / "postgres.log", user=launch.user, die_with_parent=True)
            time.sleep(0.1)
