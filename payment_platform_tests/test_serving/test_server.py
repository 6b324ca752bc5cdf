"""`payment-platform api`'s port check: a port another server listens on is refused with a line naming the setting;
a port whose last server has just stopped (its connections in TIME_WAIT) is free, as uvicorn itself binds it."""
from __future__ import annotations

import socket

import pytest

from payment_platform.errors import UsageError
from payment_platform.serving.server import check_port_free


def test_a_port_in_use_is_refused_naming_the_setting():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(UsageError, match=rf"--port: cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)


def test_a_port_just_released_with_connections_in_time_wait_is_free():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's listener
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server side closes first: its end of the connection waits in TIME_WAIT on `port`
    client.recv(1)
    client.close()
    listener.close()
    with socket.socket() as plain:  # what the check did before: a bind without SO_REUSEADDR fails here
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))
    check_port_free("127.0.0.1", port)
