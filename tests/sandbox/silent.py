"""A fault injector: a TCP server that accepts every connection and never says a word.

What an API server stuck before its TLS handshake looks like to a client (a hung process,
a proxy holding connections): the TCP connection opens, then nothing comes back. A test
points a kubeconfig at it to see how long a client waits and what it says afterwards.
Nothing is read or sent; connections are held until the server stops.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """Listen on 127.0.0.1; yields the port. Stopped (every connection closed) afterwards."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(connection)

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        for connection in held:
            connection.close()


def kubeconfig_for(port: int) -> str:
    """A kubeconfig (context `silent`) whose cluster is the server on `port`."""
    return (
        "apiVersion: v1\nkind: Config\ncurrent-context: silent\n"
        f"clusters: [{{name: silent, cluster: {{server: 'https://127.0.0.1:{port}', "
        "insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: silent, context: {cluster: silent, user: u, namespace: default}}]\n"
    )
