"""A socket wrapper that lets the emulator stall or drop a connection.

websockets reads the socket in its own thread and answers pings and close
frames there. To simulate a peer that stops responding (``stall``) the reads
and writes are intercepted below the WebSocket layer: while stalled, data that
arrives is held back forever (so nothing is answered, not even the closing
handshake) and data to send is discarded.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Optional

from websockets.sync.server import ServerConnection


class StallableSocket:
    """Proxy around a connected TCP socket with ``stall`` and ``abort`` switches."""

    def __init__(self, sock: socket.socket) -> None:
        self.raw = sock
        self.stalled = threading.Event()
        self.released = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def fileno(self) -> int:
        return self.raw.fileno()

    def recv(self, bufsize: int, *args: Any) -> bytes:
        if self.stalled.is_set():
            self.released.wait()
            return b""
        data = self.raw.recv(bufsize, *args)
        if self.stalled.is_set() and data:
            # Data read after the stall began is never processed.
            self.released.wait()
            return b""
        return data

    def sendall(self, data: Any, *args: Any) -> None:
        if self.stalled.is_set():
            return
        self.raw.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        if self.stalled.is_set():
            return len(data)
        return self.raw.send(data, *args)

    def stall(self) -> None:
        """Stop reading and writing; keep the TCP connection open."""
        self.stalled.set()

    def abort(self) -> None:
        """Shut the TCP connection down without a close frame and unblock readers."""
        try:
            self.raw.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.released.set()

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_RDWR:
            self.released.set()
        try:
            self.raw.shutdown(how)
        except OSError:
            if not self.stalled.is_set():
                raise

    def close(self) -> None:
        self.released.set()
        self.raw.close()


class EmulatorServerConnection(ServerConnection):
    """websockets ``ServerConnection`` whose socket is a :class:`StallableSocket`.

    ``serve()`` calls the factory positionally as ``(sock, protocol, ...)`` on
    websockets 15, 16 and 17, so the extra arguments are passed through.
    """

    def __init__(self, sock: socket.socket, protocol: Any, *args: Any, **kwargs: Any) -> None:
        self.stallable = StallableSocket(sock)
        self.emu_upgrade: Optional[Any] = None
        super().__init__(self.stallable, protocol, *args, **kwargs)  # type: ignore[arg-type]
