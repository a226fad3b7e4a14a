"""Helpers for tests and benchmarks: recorded Live API traffic and generated messages.

The recordings live outside the repository, in ``../shared/recordings`` next to
it (see that folder's README): they are read in place, never copied here.

Log format: ``>LEN `` starts a client frame and ``<LEN `` a server frame; LEN
counts the bytes up to the next entry (the JSON payload, possibly
pretty-printed over many lines, plus the separating newlines).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import random
import re
import string
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from livesync import types as t

RECORDINGS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "recordings"
EXPECTED_FILES = 19

_HEADER = re.compile(rb"([<>])([0-9]+) ")


@dataclass(frozen=True)
class Frame:
    """One recorded WebSocket message."""

    direction: str  # "client" or "server"
    payload: bytes  # exactly as in the log (may end with newlines)

    def json(self) -> Any:
        return json.loads(self.payload)


def parse_log(data: bytes) -> List[Frame]:
    """Split a ``*.websocket.log`` file into frames."""
    frames = []
    pos = 0
    while pos < len(data):
        match = _HEADER.match(data, pos)
        if match is None:
            raise ValueError("unexpected data at byte %d of recording" % pos)
        start = match.end()
        end = start + int(match.group(2))
        if end > len(data):
            raise ValueError("frame at byte %d runs past the end of the recording" % pos)
        direction = "client" if match.group(1) == b">" else "server"
        frames.append(Frame(direction, data[start:end]))
        pos = end
    return frames


def recordings_available() -> bool:
    return RECORDINGS_DIR.is_dir() and any(RECORDINGS_DIR.glob("*.websocket.log"))


def require_recordings() -> Path:
    """Return the recordings folder, skipping the test when it is absent.

    On CI (``CI=true``) a missing folder fails instead: it means the checkout is
    incomplete and the recording tests would silently prove nothing.
    """
    import pytest

    if recordings_available():
        return RECORDINGS_DIR
    message = "recorded Live API sessions not found at %s (expected beside the repository)" % (
        RECORDINGS_DIR,
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pragma: no cover


def load_recordings(folder: Path = RECORDINGS_DIR) -> Dict[str, List[Frame]]:
    """All recordings, by file name (without ``.websocket.log``)."""
    result = {}
    for path in sorted(folder.glob("*.websocket.log")):
        result[path.name[: -len(".websocket.log")]] = parse_log(path.read_bytes())
    return result


def server_payloads(folder: Path = RECORDINGS_DIR) -> List[Tuple[str, bytes]]:
    """Every recorded server frame as (recording name, raw payload)."""
    return [
        (name, frame.payload)
        for name, frames in load_recordings(folder).items()
        for frame in frames
        if frame.direction == "server"
    ]


# --- generated messages ------------------------------------------------------------

ENUM_VALUES = {
    "modality": ["TEXT", "AUDIO", "IMAGE", "VIDEO", "DOCUMENT", "FUTURE_MODALITY"],
    "turn_complete_reason": ["NEED_MORE_INPUT", "MALFORMED_FUNCTION_CALL", "SOMETHING_NEW"],
    "interaction_status": ["IN_PROGRESS", "IDLE", "REQUIRES_ACTION", "NEW_STATUS"],
    "voice_activity_type": ["ACTIVITY_START", "ACTIVITY_END", "ACTIVITY_NEW"],
    "vad_signal_type": ["VAD_SIGNAL_TYPE_SOS", "VAD_SIGNAL_TYPE_EOS", "VAD_SIGNAL_TYPE_X"],
    "traffic_type": ["ON_DEMAND", "PROVISIONED_THROUGHPUT"],
    "scheduling": ["SILENT", "WHEN_IDLE", "INTERRUPT"],
    "language": ["PYTHON", "LANGUAGE_UNSPECIFIED"],
    "outcome": ["OUTCOME_OK", "OUTCOME_FAILED"],
    "role": ["user", "model"],
}

INT64_FIELDS = {
    "last_consumed_client_message_index",
    "token_count",
    "prompt_token_count",
    "cached_content_token_count",
    "response_token_count",
    "tool_use_prompt_token_count",
    "thoughts_token_count",
    "total_token_count",
    "trigger_tokens",
    "target_tokens",
}

ONEOF_FIELDS = [
    "setup_complete",
    "server_content",
    "tool_call",
    "tool_call_cancellation",
    "go_away",
    "session_resumption_update",
    "voice_activity",
    "voice_activity_detection_signal",
]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _random_text(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + " .,'\"\\/\n\t{}[]:é中😀\u2028"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value (floats chosen so they survive a JSON round trip)."""
    choice = rng.randint(0, 7 if depth < 3 else 4)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randint(-(2**53), 2**53)
    if choice == 3:
        return rng.choice([0.5, -1.25, 3.0e10, 1e-7])
    if choice == 4:
        return _random_text(rng)
    if choice in (5, 6):
        return {_random_text(rng): random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _unwrap(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def random_value(rng: random.Random, annotation: Any, name: str, depth: int) -> Any:
    annotation = _unwrap(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # LiveConfig.system_instruction: str or Content
        choice = rng.choice([arg for arg in typing.get_args(annotation) if arg is not type(None)])
        return random_value(rng, choice, name, depth)
    if origin in (list, List):
        (item,) = typing.get_args(annotation)
        return [random_value(rng, item, name, depth + 1) for _ in range(rng.randint(0, 3))]
    if origin in (dict, Dict):
        if typing.get_args(annotation) == (str, str):  # LiveConfig.labels
            return {_random_text(rng): _random_text(rng) for _ in range(rng.randint(0, 3))}
        return {_random_text(rng): random_json(rng, 1) for _ in range(rng.randint(0, 3))}
    if annotation is Any:
        return random_json(rng)
    if dataclasses.is_dataclass(annotation):
        return random_instance(rng, annotation, depth + 1)
    if annotation is str:
        if name in ENUM_VALUES:
            return rng.choice(ENUM_VALUES[name])
        return _random_text(rng)
    if annotation is bool:
        return rng.random() < 0.5
    if annotation is int:
        if name in INT64_FIELDS:
            return rng.choice([0, 1, rng.randint(0, 2**62), -5])
        return rng.randint(0, 100000)
    if annotation is float:
        return rng.choice([0.0, 0.5, 1.0, 2.25])
    if annotation is bytes:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 48)))
    if annotation is datetime.timedelta:
        return datetime.timedelta(
            seconds=rng.randint(0, 10**6),
            microseconds=rng.choice([0, 500000, rng.randint(0, 999999)]),
        )
    raise TypeError("no generator for %r" % (annotation,))


def random_instance(rng: random.Random, cls: Any, depth: int = 0, presence: float = 0.5) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name == "unknown":
            continue
        if depth > 10 or rng.random() >= presence:
            continue
        kwargs[field.name] = random_value(rng, hints[field.name], field.name, depth)
    return cls(**kwargs)


def random_server_message(rng: random.Random) -> t.LiveServerMessage:
    """A random valid message: one oneof field, sometimes with usage metadata."""
    hints = typing.get_type_hints(t.LiveServerMessage)
    kwargs = {}
    oneof = rng.choice(ONEOF_FIELDS + ["usage_metadata"])
    kwargs[oneof] = random_instance(rng, _unwrap(hints[oneof]), 1, presence=0.6)
    if oneof == "server_content" and rng.random() < 0.5:
        kwargs["usage_metadata"] = random_instance(rng, t.UsageMetadata, 1, presence=0.6)
    return t.LiveServerMessage(**kwargs)


def to_wire(
    rng: random.Random, message: t.LiveServerMessage
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Wire JSON for ``message`` with the server's quirks, chosen at random.

    Uses dataclasses-json's ``to_dict`` and then, walking the types: int64
    values as strings, URL-safe or unpadded base64, Vertex usage names,
    unknown keys at any level (returned separately for the top level).
    """
    wire = message.to_dict()
    unknown: Dict[str, Any] = {}
    _mangle(rng, wire, type(message))
    if rng.random() < 0.2:
        key = "futureMessage%d" % rng.randint(0, 9)
        unknown[key] = random_json(rng)
        wire[key] = unknown[key]
    return wire, unknown


def _mangle(rng: random.Random, wire: Dict[str, Any], cls: Any) -> None:
    hints = typing.get_type_hints(cls)
    by_wire = {}
    for field in dataclasses.fields(cls):
        override = field.metadata.get("dataclasses_json", {}).get("letter_case")
        by_wire[override(field.name) if override else _camel(field.name)] = field
    for key in list(wire):
        field = by_wire.get(key)
        if field is None:
            continue
        value = wire[key]
        annotation = _unwrap(hints[field.name])
        if field.name in INT64_FIELDS and rng.random() < 0.5:
            wire[key] = str(value)
        elif annotation is bytes:
            if rng.random() < 0.3:
                value = value.replace("+", "-").replace("/", "_")
            if rng.random() < 0.3:
                value = value.rstrip("=")
            wire[key] = value
        elif dataclasses.is_dataclass(annotation):
            _mangle(rng, value, annotation)
        elif typing.get_origin(annotation) in (list, List):
            (item,) = typing.get_args(annotation)
            if dataclasses.is_dataclass(item):
                for element in value:
                    _mangle(rng, element, item)
    if cls is t.UsageMetadata and rng.random() < 0.5:
        for gemini, vertex in (
            ("responseTokenCount", "candidatesTokenCount"),
            ("responseTokensDetails", "candidatesTokensDetails"),
        ):
            if gemini in wire:
                wire[vertex] = wire.pop(gemini)
    if cls is not t.LiveServerMessage and rng.random() < 0.2:
        wire["someNewField%d" % rng.randint(0, 9)] = random_json(rng)


def generated_payloads(
    count: int, seed: int = 1234
) -> List[Tuple[t.LiveServerMessage, bytes, Dict[str, Any]]]:
    """``count`` random (message, raw JSON bytes, expected ``unknown``) triples."""
    rng = random.Random(seed)
    result = []
    for _ in range(count):
        message = random_server_message(rng)
        wire, unknown = to_wire(rng, message)
        raw = json.dumps(wire, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)
        result.append((message, raw.encode("utf-8"), unknown))
    return result


def all_model_fields(root: Any = t.LiveServerMessage) -> set:
    """Every (class, field) reachable from ``root``, for coverage checks."""
    seen: set = set()
    pending = [root]
    visited = set()
    while pending:
        cls = pending.pop()
        if cls in visited:
            continue
        visited.add(cls)
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            if field.name == "unknown":
                continue
            seen.add((cls.__name__, field.name))
            annotation = _unwrap(hints[field.name])
            if typing.get_origin(annotation) in (list, List):
                annotation = typing.get_args(annotation)[0]
            if dataclasses.is_dataclass(annotation):
                pending.append(annotation)
    return seen


def fields_present(message: Any, seen: Optional[set] = None) -> set:
    """The (class, field) pairs that are set somewhere in ``message``."""
    if seen is None:
        seen = set()
    if isinstance(message, list):
        for item in message:
            fields_present(item, seen)
    elif dataclasses.is_dataclass(message):
        for field in dataclasses.fields(message):
            value = getattr(message, field.name)
            if value is not None and field.name != "unknown":
                seen.add((type(message).__name__, field.name))
                fields_present(value, seen)
    return seen


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
