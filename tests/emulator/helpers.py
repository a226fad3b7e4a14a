"""A minimal raw client for the emulator tests: websocket-client speaking JSON."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable, Dict, List, Optional, Tuple, cast

import websocket

OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8

GEMINI_MODEL = "models/gemini-live-2.5-flash-preview"
TEXT_CONFIG = {"responseModalities": ["TEXT"]}


class Closed(Exception):
    """The server closed the connection (close frame) while a message was expected."""

    def __init__(self, code: Optional[int], reason: str) -> None:
        super().__init__(f"closed {code} {reason!r}")
        self.code = code
        self.reason = reason


class WsClient:
    """Thin wrapper around ``websocket.WebSocket`` with JSON helpers."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self.ws = ws
        self.received: List[Dict[str, Any]] = []

    def send(self, message: Any) -> None:
        self.ws.send(json.dumps(message))

    def frame(self, timeout: float = 5.0) -> Tuple[int, bytes]:
        """Return the next data or close frame as ``(opcode, payload)``."""
        self.ws.settimeout(timeout)
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode in (OP_TEXT, OP_BINARY, OP_CLOSE):
                return opcode, data

    def message(self, timeout: float = 5.0) -> Dict[str, Any]:
        """Return the next JSON message; raise Closed on a close frame."""
        opcode, data = self.frame(timeout)
        if opcode == OP_CLOSE:
            # websocket-client answered the close frame; end TCP like a real client.
            abort(self.ws)
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            raise Closed(code, data[2:].decode("utf-8"))
        message: Dict[str, Any] = json.loads(data)
        self.received.append(message)
        return message

    def until(self, predicate: Callable[[Dict[str, Any]], bool],
              timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Read messages until ``predicate`` holds; return them all (the match last)."""
        out: List[Dict[str, Any]] = []
        while True:
            message = self.message(timeout)
            out.append(message)
            if predicate(message):
                return out

    def turn(self, timeout: float = 5.0) -> List[Dict[str, Any]]:
        """Read until a serverContent.turnComplete message."""
        return self.until(turn_complete, timeout)

    def closed(self, timeout: float = 5.0) -> Tuple[Optional[int], str]:
        """Read (skipping messages) until the close frame; return ``(code, reason)``."""
        while True:
            try:
                self.message(timeout)
            except Closed as exc:
                return exc.code, exc.reason

    def setup(self, **setup: Any) -> Dict[str, Any]:
        """Send setup (model defaults to a Gemini model) and return setupComplete."""
        setup.setdefault("model", GEMINI_MODEL)
        self.send({"setup": setup})
        return self.until(lambda m: "setupComplete" in m)[-1]

    def text(self, text: str, turn_complete: bool = True) -> None:
        self.send({"clientContent": {
            "turns": [{"role": "user", "parts": [{"text": text}]}],
            "turnComplete": turn_complete}})

    def audio(self, pcm: bytes, rate: int = 16000) -> None:
        self.send({"realtimeInput": {"audio": {
            "mimeType": f"audio/pcm;rate={rate}",
            "data": base64.b64encode(pcm).decode()}}})


def abort(ws: websocket.WebSocket) -> None:
    """Close the client socket at once (websocket-client's untyped ``shutdown``)."""
    cast(Any, ws).shutdown()


def turn_complete(message: Dict[str, Any]) -> bool:
    return bool(message.get("serverContent", {}).get("turnComplete"))


def texts(messages: List[Dict[str, Any]]) -> List[str]:
    """The text parts of modelTurn messages, in order."""
    out = []
    for m in messages:
        for part in m.get("serverContent", {}).get("modelTurn", {}).get("parts", []):
            if "text" in part:
                out.append(part["text"])
    return out


def content_flags(messages: List[Dict[str, Any]]) -> List[str]:
    """The serverContent flags and top-level kinds, in order (compact sequence)."""
    out = []
    for m in messages:
        for key, value in m.items():
            if key == "serverContent":
                for flag in ("interrupted", "generationComplete", "turnComplete"):
                    if value.get(flag):
                        out.append(flag)
                if "modelTurn" in value:
                    out.append("modelTurn")
            elif key != "usageMetadata":
                out.append(key)
    return out


def pcm(ms: int, loud: bool, rate: int = 16000) -> bytes:
    """``ms`` milliseconds of s16le mono PCM: a loud square wave or silence."""
    samples = rate * ms // 1000
    if not loud:
        return b"\x00\x00" * samples
    hi = (8000).to_bytes(2, "little", signed=True)
    lo = (-8000).to_bytes(2, "little", signed=True)
    return b"".join(hi if (i // 20) % 2 == 0 else lo for i in range(samples))
