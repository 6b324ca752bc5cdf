"""A private PostgreSQL started the way the stack starts its own (cluster preparation, binaries, launch settings),
for tests that crash it, or that check where its cluster lives."""
from __future__ import annotations

import time

from devstack.stack import services
from devstack.stack.processes import spawn
from payment_platform.config import Endpoints
from payment_platform.monitoring import health
from payment_platform_tests.waiting import WaitTimeout, wait_until


def start_postgres(data_dir, port):
    """A private PostgreSQL (the stack's own binaries and launch settings) that this test may crash."""
    launch = services.POSTGRES.launch(data_dir, port)
    dsn = services.postgres_url(port, "postgres")
    log = data_dir / "postgres.log"
    process = spawn(launch.command, log, user=launch.user, die_with_parent=True)

    def answers() -> bool:
        nonlocal process
        if process.poll() is not None:
            # after a crash, the old server's last backends may still hold its shared memory for a moment
            time.sleep(0.5)
            process = spawn(launch.command, log, user=launch.user, die_with_parent=True)
            return False
        return bool(health.probe("postgres", Endpoints(postgres=dsn)))

    try:
        wait_until(answers, 40, "the private Postgres answering", retry_on=(Exception,),
                   detail=lambda: log.read_text()[-2000:])
    except WaitTimeout:
        process.kill()
        raise
    return process, dsn
