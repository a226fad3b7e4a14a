"""Vertex AI with a google-auth credential, refreshed on every dial that needs it.

Vertex AI authenticates the Live WebSocket with an OAuth access token
(``Authorization: Bearer …``) that expires after about an hour, while a livesync
session dials again at every ``goAway`` rotation (about every 10 minutes) and
after every drop. ``livesync.auth.google_auth_token_provider`` turns a
google-auth credential into the client's ``token_provider``: livesync calls it
on each dial (on its supervisor thread), and it refreshes the credential first
whenever google-auth says it is not valid.

By default it runs against the embedded offline emulator, with a real
``google.oauth2.credentials.Credentials`` whose refresh handler gets a new
token from the emulator (valid for an hour). To show a refresh without waiting
an hour, the example then expires the token (and the emulator revokes it) just
before the server rotates the connection: the new connection dials with a
freshly refreshed token. google-auth refreshes real tokens about 4 minutes
before they expire.

With ``--live`` it uses Application Default Credentials on the real Vertex AI::

    pip install 'livesync[vertex]'
    gcloud auth application-default login
    GOOGLE_CLOUD_PROJECT=my-project GOOGLE_CLOUD_LOCATION=us-central1 \\
        python examples/vertex.py --live

Run: ``python examples/vertex.py`` (or ``python examples/vertex.py --live``)
"""

from __future__ import annotations

import argparse
import datetime
import os
import secrets
import threading
from typing import Any, Callable, List, Optional, Sequence, Tuple

import livesync
from livesync.auth import google_auth_token_provider

MODEL = "gemini-live-2.5-flash"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TOKEN_LIFETIME = datetime.timedelta(hours=1)


def utcnow() -> datetime.datetime:
    """Now in naive UTC, the form google-auth uses for ``expiry``."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def run(client: livesync.Client, model: str = MODEL,
        rotate: Optional[Callable[[], None]] = None) -> None:
    """Ask, (optionally) force a connection rotation, ask again. Blocks until done."""
    rotated = threading.Event()

    def on_reconnect(event: livesync.Reconnected) -> None:
        # Runs on livesync's dispatcher thread; the new connection has a new token.
        print("  [%s reconnect: resumed=%s]" % (
            "planned" if event.planned else "unplanned", event.resumed))
        rotated.set()

    session = client.connect(
        model,
        config={"response_modalities": ["TEXT"]},
        on_reconnect=on_reconnect,
        on_close=lambda closed: print("closed:", closed.code),
    )
    with session:
        print("> What is the capital of France?")
        print("<", session.ask("What is the capital of France?", timeout=60).text)
        if rotate is not None:
            # The next connection is dialed on livesync's supervisor thread, which
            # calls the token provider: it refreshes the expired credential.
            rotate()
            if not rotated.wait(60):
                raise TimeoutError("no rotation within 60 s")
        print("> Are you still there?")
        print("<", session.ask("Are you still there?", timeout=60).text)


def emulator_credentials(emu: Any) -> Tuple[Any, List[str]]:
    """A google-auth credential whose refresh handler asks ``emu`` for a new token.

    Returns the credential and the list of tokens it was refreshed to.
    """
    from google.oauth2.credentials import Credentials

    refreshed: List[str] = []

    def refresh_handler(request: Any, scopes: Optional[Sequence[str]] = None
                        ) -> Tuple[str, datetime.datetime]:
        token = "ya29.emulator-" + secrets.token_urlsafe(16)
        emu.bearer_tokens.add(token)  # the emulator now accepts it
        refreshed.append(token)
        print("  [credential refreshed: access token #%d]" % len(refreshed))
        return token, utcnow() + TOKEN_LIFETIME

    return Credentials(token=None, refresh_handler=refresh_handler), refreshed


def run_on_emulator(credentials: Any = None) -> List[str]:
    """The example against the embedded emulator; returns the tokens refreshed to."""
    from livesync.emulator import Emulator

    with Emulator() as emu:
        refreshed: List[str] = []
        if credentials is None:
            credentials, refreshed = emulator_credentials(emu)
        client = livesync.Client(
            vertexai=True, project="my-project", location="us-central1",
            token_provider=google_auth_token_provider(credentials),
            base_url=emu.base_url,  # the real service: leave base_url out
        )

        def an_hour_later() -> None:
            print("* an hour later: the access token expires (the server revokes it)")
            emu.bearer_tokens.discard(credentials.token)
            credentials.expiry = utcnow() - datetime.timedelta(seconds=1)
            print("* the server announces the end of the connection (goAway)")
            emu.send_go_away(time_left=30.0)

        run(client, rotate=an_hour_later)
        print("connections: %d, all with a bearer token: %s" % (
            len(emu.connections), all(c.auth == "bearer" for c in emu.connections)))
        print("credential refreshes: %d" % len(refreshed))
        return refreshed


def run_live(model: str) -> None:
    """The example on the real Vertex AI with Application Default Credentials."""
    import google.auth

    credentials, default_project = google.auth.default(scopes=SCOPES)
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or default_project
    if not project:
        raise SystemExit("set GOOGLE_CLOUD_PROJECT (no project in the default credentials)")
    client = livesync.Client(
        vertexai=True, project=project,
        location=os.environ.get("GOOGLE_CLOUD_LOCATION", "us-central1"),
        token_provider=google_auth_token_provider(credentials),
    )
    run(client, model)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", action="store_true",
                        help="use the real Vertex AI with Application Default Credentials")
    parser.add_argument("--model", default=MODEL, help="model (default %(default)s)")
    args = parser.parse_args(argv)
    if args.live:
        run_live(args.model)
    else:
        run_on_emulator()


if __name__ == "__main__":
    main()
