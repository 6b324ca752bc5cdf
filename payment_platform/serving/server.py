"""Serving the REST API with uvicorn: in the foreground (`payment-platform api`) or as a child process beside
Dagster (`payment-platform up`)."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from payment_platform.errors import UsageError


def check_port_free(host: str, port: int, setting: str = "--port") -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as uvicorn binds: a port whose last server stopped a moment ago (TIME_WAIT) is free, one listened on is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UsageError(f"{setting}: cannot listen on {host}:{port}: {error.strerror or error}") from None


def run(host: str, port: int) -> int:
    """Serve in the foreground until Ctrl+C / SIGTERM."""
    import uvicorn

    from payment_platform.serving.api import TOKEN_SETTING, app_from_env

    check_port_free(host, port)
    app = app_from_env()  # ConfigError names a malformed setting before anything listens
    protected = "Bearer token required" if os.environ.get(TOKEN_SETTING, "").strip() else \
        f"no token ({TOKEN_SETTING} unset)"
    print(f"payment API on http://{host}:{port} (docs /docs, {protected}); Ctrl+C stops it", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return 0


def command(host: str, port: int) -> list[str]:
    """The command line that serves the API in a child process."""
    executable = Path(sys.executable).with_name("payment-platform")
    base = [str(executable)] if executable.exists() else [sys.executable, "-m", "payment_platform.cli"]
    return base + ["api", "--host", host, "--port", str(port)]
