"""``anygate dev`` asks for its port before starting anything (``anygate.ops.port_check``): a
taken one is an error naming the port, the host and the process that holds it."""

from __future__ import annotations

import os
import socket

import pytest

from anygate.ops.port_check import PortUnavailableError, check_port
from anygate.ops.processes import free_port


def test_a_free_port_passes() -> None:
    check_port("127.0.0.1", free_port())


def test_a_port_someone_listens_on_is_refused_naming_the_listener() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(PortUnavailableError) as caught:
            check_port("127.0.0.1", port)
    message = str(caught.value)
    assert message.startswith(f"port {port} on 127.0.0.1 is in use (by pid {os.getpid()}: ")
    assert message.endswith("; pass --port")


def test_a_host_that_does_not_resolve_is_named() -> None:
    with pytest.raises(
        PortUnavailableError, match=r"cannot listen on no-such-host\.invalid: .*--host"
    ):
        check_port("no-such-host.invalid", free_port())


def test_an_address_not_on_this_machine_is_refused() -> None:
    with pytest.raises(PortUnavailableError, match=r"cannot listen on port \d+ on 192\.0\.2\.1: "):
        check_port("192.0.2.1", free_port())  # TEST-NET-1: never a local address
