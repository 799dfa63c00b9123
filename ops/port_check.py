"""Is ``host:port`` free to listen on, and if not, who holds it: asked before ``anygate dev``
starts anything, so a taken port is one clear error and not an API that dies after its Redis,
workers and banner are up (or worse, a banner for the server that already answers there).

The answer is a bind, as the API will do it (``SO_REUSEADDR``, as uvicorn sets it, so a port
in ``TIME_WAIT`` counts as free); the listener that holds the port is looked up with psutil,
best effort (another user's process shows no pid).
"""

from __future__ import annotations

import contextlib
import errno
import socket

import psutil

_COMMAND_CHARS = 120
"""A command line is cut to this length in the message."""


class PortUnavailableError(RuntimeError):
    """The port cannot be listened on; the message says why and what to pass instead."""


def check_port(host: str, port: int) -> None:
    """Raise ``PortUnavailableError`` unless a listener could bind ``host:port`` now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortUnavailableError(
            f"cannot listen on {host}: {exc.strerror}; pass --host"
        ) from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortUnavailableError(
                    f"port {port} on {host} is in use ({holder_of(port)}); pass --port"
                ) from None
            raise PortUnavailableError(
                f"cannot listen on port {port} on {host}: {exc.strerror}; pass --port or --host"
            ) from None


def holder_of(port: int) -> str:
    """``by pid N: <command>``, with the process that started it when it is not init, or
    ``by another program`` when the listener cannot be seen."""
    pid = _listener_pid(port)
    if pid is None:
        return "by another program"
    try:
        proc = psutil.Process(pid)
        said = f"by pid {pid}: {_command(proc)}"
        parent = proc.parent()
        if parent is not None and parent.pid > 1:
            said += f", started by pid {parent.pid}: {_command(parent)}"
    except psutil.Error:
        return f"by pid {pid}"
    return said


def _listener_pid(port: int) -> int | None:
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or conn.pid is None:
            continue
        if conn.laddr and conn.laddr.port == port:
            return conn.pid
    return None


def _command(proc: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        line = " ".join(" ".join(proc.cmdline()).split())  # one line, however it was typed
        if line:
            return line if len(line) <= _COMMAND_CHARS else line[: _COMMAND_CHARS - 1] + "…"
    try:
        return proc.name()
    except psutil.Error:
        return "?"
