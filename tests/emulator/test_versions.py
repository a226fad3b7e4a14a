"""API versions: v1 served, per-version model availability, token endpoints per version."""

from __future__ import annotations

from typing import Callable

import pytest
import websocket

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient
from tests.emulator.test_auth import http, mint

Connect = Callable[..., WsClient]

STABLE = "models/gemini-live-2.5-flash"
PREVIEW = "models/gemini-live-2.5-flash-preview"


def test_v1_serves_non_preview_models(emu: Emulator, connect: Connect) -> None:
    """The v1 path (google-genai 3.x default) accepts a non-preview Live model."""
    client = connect(emu, emu.url(version="v1"))
    assert client.setup(model=STABLE, generationConfig=TEXT_CONFIG) == {"setupComplete": {}}
    assert emu.connections[0].api_version == "v1"


def test_preview_model_on_v1_closes_1008_after_setup(emu: Emulator, connect: Connect) -> None:
    """A preview model is v1beta-only: on v1 the setup is closed 1008 with the real text."""
    client = connect(emu, emu.url(version="v1"))
    client.send({"setup": {"model": PREVIEW}})
    assert client.closed() == (1008, "models/gemini-live-2.5-flash-preview is not found for "
                               "API version v1, or is not supported for bidiGenerateContent")
    for version in ("v1beta", "v1alpha"):
        connect(emu, emu.url(version=version)).setup(model=PREVIEW)


def test_model_versions_option(make_emulator: Callable[..., Emulator],
                               connect: Connect) -> None:
    """model_versions decides per model; unlisted models follow the default rule."""
    emu = make_emulator(model_versions={"models/gemini-live-2.5-flash": ["v1beta"],
                                        "gemini-live-2.5-flash-preview": ["v1"]})
    client = connect(emu, emu.url(version="v1"))
    client.send({"setup": {"model": STABLE}})
    assert client.closed()[0] == 1008
    connect(emu, emu.url(version="v1")).setup(model=PREVIEW)
    connect(emu, emu.url(version="v1")).setup(model="models/gemini-2.0-flash-live-001")


def test_rest_models_follow_availability(emu: Emulator) -> None:
    """GET /v1/models lists only models served on v1; a preview model is 404 there."""
    status, listing = http(emu, "GET", "/v1/models", key=emu.api_key)
    names = [m["name"] for m in listing["models"]]
    assert status == 200 and STABLE in names and PREVIEW not in names
    status, body = http(emu, "GET", "/v1/" + PREVIEW, key=emu.api_key)
    assert status == 404 and "API version v1," in body["error"]["message"]


def test_tokens_are_minted_on_v1alpha_only(emu: Emulator) -> None:
    """POST /v1/auth_tokens and /v1beta/auth_tokens are 404, as on the real service."""
    for version in ("v1", "v1beta"):
        status, body = http(emu, "POST", f"/{version}/auth_tokens", {}, key=emu.api_key)
        assert status == 404 and body["error"]["status"] == "NOT_FOUND"


def test_constrained_endpoint_per_version(emu: Emulator, connect: Connect) -> None:
    """Constrained: v1alpha and (lax default) v1beta accept a token; v1 is HTTP 404."""
    token = mint(emu, uses=0)["name"]
    header = ["Authorization: Token " + token]
    for version in ("v1alpha", "v1beta"):
        connect(emu, emu.url(version=version, constrained=True), key=False,
                headers=header).setup()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu, emu.url(version="v1", constrained=True), key=False, headers=header)
    assert info.value.status_code == 404


def test_constrained_versions_option(make_emulator: Callable[..., Emulator],
                                     connect: Connect) -> None:
    """constrained_versions=("v1alpha",) refuses the v1beta Constrained upgrade with 404."""
    emu = make_emulator(constrained_versions=("v1alpha",))
    token = mint(emu, uses=0)["name"]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu, emu.url(version="v1beta", constrained=True), key=False,
                headers=["Authorization: Token " + token])
    assert info.value.status_code == 404
