"""Decoding server messages: :func:`parse_server_message`, the reader's hot path.

It does not call dataclasses-json per message (about 0.5 ms each). Instead, a
decoder is compiled once per class from the dataclass definitions in
:mod:`livesync.types`, read through :mod:`livesync._schema` (fields, wire
names and aliases, type hints and per-field decoders), and tests prove it
returns objects equal to ``LiveServerMessage.from_dict(json.loads(raw))``.
Any defect in the input raises :class:`~livesync.exceptions.ProtocolError`,
never another type.

Forward compatibility: keys a model does not know are kept, not dropped, in
its catch-all field (``extra`` on nested server-side models,
``LiveServerMessage.unknown`` at the top level). Collecting them costs
nothing on messages without unknown keys.

Runs on the reader thread; pure and safe from any thread.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._schema import Spec, catch_all, class_info, defaults, key_table
from .exceptions import ProtocolError
from .types import LiveServerMessage, decode_base64, decode_duration, decode_int64

__all__ = ["parse_server_message"]


class _Bad(Exception):
    """A defect in server data; ``path`` is built while unwinding, innermost first."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: List[str] = []


_JSON_KIND = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _expected(what: str, value: Any) -> _Bad:
    return _Bad("expected %s, got %s" % (what, _JSON_KIND.get(type(value), "value")))


def _dec_float(value: Any) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    raise _expected("number", value)


def _dec_int(value: Any) -> int:
    if type(value) is int:
        return value
    raise _expected("integer", value)


def _wrap_field_decoder(fn: Callable[[Any], Any], label: str) -> Callable[[Any], Any]:
    def decode(value: Any) -> Any:
        try:
            return fn(value)
        except (ValueError, TypeError, OverflowError):
            raise _Bad("invalid " + label) from None

    return decode


_dec_bytes = _wrap_field_decoder(decode_base64, "base64")
_dec_duration = _wrap_field_decoder(decode_duration, "duration")
_dec_int64 = _wrap_field_decoder(decode_int64, "integer")

# Entry of a compiled field table: (attribute, required JSON type or None, converter or None).
_Entry = Tuple[str, Optional[type], Optional[Callable[[Any], Any]]]

_DECODERS: Dict[type, Callable[[Any], Any]] = {}


def _decoder_for_spec(spec: Spec) -> Tuple[Optional[type], Optional[Callable[[Any], Any]]]:
    kind = spec[0]
    if kind == "str":
        return str, None
    if kind == "bool":
        return bool, None
    if kind == "dict" or kind == "str_dict":
        return dict, None
    if kind == "any":
        return None, None
    if kind == "float":
        return None, _dec_float
    if kind == "int":
        return None, _dec_int
    if kind == "int64":
        return None, _dec_int64
    if kind == "bytes":
        return str, _dec_bytes
    if kind == "duration":
        return str, _dec_duration
    if kind == "dc":
        return dict, _dataclass_decoder(spec[1])
    if kind == "list":
        return list, _list_decoder(spec[1])
    raise TypeError("cannot decode %r" % (spec,))  # pragma: no cover


def _list_decoder(item_spec: Spec) -> Callable[[Any], Any]:
    item_type, item_conv = _decoder_for_spec(item_spec)

    def find_bad(value: List[Any]) -> None:
        for index, item in enumerate(value):
            try:
                if item_type is not None and type(item) is not item_type:
                    raise _expected(_JSON_KIND.get(item_type, "value"), item)
                if item_conv is not None:
                    item_conv(item)
            except _Bad as exc:
                exc.path.append("[%d]" % index)
                raise

    if item_conv is None:
        if item_type is None:
            return list

        def decode_plain(value: List[Any]) -> List[Any]:
            for item in value:
                if type(item) is not item_type:
                    find_bad(value)
            return value

        return decode_plain

    conv = item_conv

    # A dataclass decoder checks its own input type; others need the check here.
    precheck = item_type is not None and item_type is not dict

    def decode(value: List[Any]) -> List[Any]:
        try:
            if precheck:
                for item in value:
                    if type(item) is not item_type:
                        raise _Bad("")
            return [conv(item) for item in value]
        except _Bad:
            find_bad(value)
            raise  # pragma: no cover - find_bad always raises here

    return decode


def _field_table(cls: type) -> Dict[str, _Entry]:
    """The compiled field table of ``cls``: every accepted key to its entry."""
    entries: Dict[str, _Entry] = {}
    for info in class_info(cls):
        json_type, conv = _decoder_for_spec(info.spec)
        entries[info.name] = (info.name, json_type, conv)
    return {key: entries[info.name] for key, info in key_table(cls).items()}


def _dataclass_decoder(cls: type) -> Callable[[Any], Any]:
    if cls in _DECODERS:
        return _DECODERS[cls]
    # Register a forwarding stub first so recursive types terminate.
    compiled: List[Callable[[Any], Any]] = []

    def stub(value: Any) -> Any:
        return compiled[0](value)

    _DECODERS[cls] = stub
    decode = _compile(cls, _field_table(cls), catch_all(cls))
    compiled.append(decode)
    _DECODERS[cls] = decode
    return decode


def _compile(
    cls: type, table: Dict[str, _Entry], catch: Optional[str]
) -> Callable[[Any], Any]:
    """The decoder of one class; unknown keys go to the ``catch`` field when there is one."""
    defaults_of = defaults(cls)
    catch_name = catch or ""
    copy_defaults = defaults_of.copy
    get = table.get
    new = object.__new__

    def decode(value: Any) -> Any:
        if type(value) is not dict:
            raise _expected("object", value)
        attrs = copy_defaults()
        unknown = None
        key = None
        try:
            for key, item in value.items():
                entry = get(key)
                if entry is None:
                    if catch is not None:
                        if unknown is None:
                            unknown = {}
                        unknown[key] = item
                    continue
                name, json_type, conv = entry
                if type(item) is json_type:
                    attrs[name] = item if conv is None else conv(item)
                elif item is None:
                    attrs[name] = defaults_of[name]
                elif json_type is None:
                    attrs[name] = item if conv is None else conv(item)
                else:
                    raise _expected(_JSON_KIND.get(json_type, "value"), item)
        except _Bad as exc:
            exc.path.append(str(key))
            raise
        if unknown is not None:
            attrs[catch_name] = unknown
        obj: Any = new(cls)
        obj.__dict__ = attrs
        return obj

    return decode


_decode_server = _dataclass_decoder(LiveServerMessage)
_JSON = json.JSONDecoder()


def _format_path(path: List[str]) -> str:
    text = ""
    for part in reversed(path):
        text += part if part.startswith("[") or not text else "." + part
    return text


def parse_server_message(data: Union[bytes, bytearray, memoryview, str]) -> LiveServerMessage:
    """Decode one server message (a JSON object, possibly pretty-printed).

    Unknown keys are kept as received: top-level ones in
    ``LiveServerMessage.unknown``, nested ones in the ``extra`` field of the
    model that holds them. Safe to call from any thread; does not
    block.

    Raises:
        ProtocolError: the data is not JSON, not an object, or has a value of
            the wrong type (including invalid base64, Durations and int64
            values). The message names the field but never contains the data.
    """
    try:
        if isinstance(data, memoryview):
            data = data.tobytes()
        if not isinstance(data, (bytes, bytearray, str)):
            raise ProtocolError("server message must be bytes or str, not %s" % type(data).__name__)
        reason = ""
        try:
            # The server sends UTF-8; decoding it ourselves skips json.loads' encoding sniffing.
            text = data if isinstance(data, str) else bytes(data).decode("utf-8")
            value = _JSON.decode(text)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        if reason:  # raised outside the except block: no __context__ holding the raw frame
            raise ProtocolError(
                "server message is not valid JSON: %s (%d bytes)" % (reason, len(data)))
        if type(value) is not dict:
            raise ProtocolError(
                "server message is not a JSON object: %s" % _JSON_KIND.get(type(value), "value")
            )
        try:
            message: LiveServerMessage = _decode_server(value)
        except _Bad as exc:
            raise ProtocolError(
                "invalid server message at %s: %s" % (_format_path(exc.path), exc.reason)
            ) from None
        return message
    except ProtocolError:
        raise
    except Exception as exc:  # never let anything else escape the reader
        raise ProtocolError("invalid server message: %s" % type(exc).__name__) from None
