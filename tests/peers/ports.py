"""Free TCP ports on the loopback interface."""

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports that were free on 127.0.0.1 a moment ago.

    All the sockets stay bound until every port is chosen, so the ports differ from each other.
    Another process may still take one before the caller binds it; peers started on these
    ports should fail loudly rather than wait.
    """
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def free_port() -> int:
    """One TCP port that was free on 127.0.0.1 a moment ago."""
    return free_ports(1)[0]
