"""A compact corpus of Live API message shapes, written for livesync's tests.

``tests/corpus/shapes.py`` holds every server message kind and wire quirk seen
in the recorded real sessions (kept outside the repository, in
``../shared/recordings``), the newer shapes of the 2026 service, and the client
messages livesync and the official SDKs send. The values are invented; no
handle, id or audio is copied from real traffic. See docs/protocol.md for what
each shape means.
"""

from tests.corpus.shapes import (
    CLIENT_SHAPES as CLIENT_SHAPES,
    SERVER_SHAPES as SERVER_SHAPES,
    ClientShape as ClientShape,
    ServerShape as ServerShape,
    client_shape as client_shape,
    server_shape as server_shape,
)

__all__ = ["CLIENT_SHAPES", "ClientShape", "SERVER_SHAPES", "ServerShape", "client_shape",
           "server_shape"]
