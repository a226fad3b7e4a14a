"""What the models in :mod:`livesync.types` look like on the wire, worked out once per class.

Everything that turns models into JSON or JSON into models reads the
dataclass definitions through this module, so a field, its wire name and its
accepted spellings are written in exactly one place (``types.py``):

* :func:`class_info` describes each wire field: attribute name, wire name
  (camelCase, or a ``field_name`` override), a *spec* of what it holds, its
  encoder and default.
* :func:`key_table` maps every accepted key to its field: the attribute name,
  the wire name and the class's ``_wire_aliases`` (dataclasses-json accepts
  the first two; the aliases are Vertex spellings). The decoder and the
  config coercion both use it, so they accept the same keys.
* :func:`catch_all` names the field that keeps unknown keys (``extra``, or
  ``unknown`` on :class:`~livesync.types.LiveServerMessage`).
* :func:`to_wire` encodes a model like ``to_dict()`` does, without
  dataclasses-json's per-call type inspection.

Pure functions over immutable class data; safe from any thread (the caches
are filled idempotently).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping as AbcMapping
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .types import Content, decode_base64, decode_duration, decode_int64

__all__ = ["FieldInfo", "Spec", "catch_all", "class_info", "defaults", "key_table", "to_wire"]

# A "spec" describes what a field holds:
#   ("str",) ("bool",) ("int",) ("float",) ("any",) ("dict",) ("str_dict",)
#   ("bytes",) ("duration",) ("int64",)       fields with a wire codec
#   ("list", spec) ("dc", cls) ("str_or_content",)
Spec = Tuple[Any, ...]

_DECODER_SPECS: Dict[Any, Spec] = {
    decode_base64: ("bytes",),
    decode_duration: ("duration",),
    decode_int64: ("int64",),
}
_SIMPLE: Dict[Any, Spec] = {str: ("str",), bool: ("bool",), int: ("int",), float: ("float",)}


class FieldInfo:
    """One wire field of a model class."""

    __slots__ = ("name", "wire", "spec", "encoder", "default")

    def __init__(self, name: str, wire: str, spec: Spec, encoder: Any, default: Any) -> None:
        self.name = name
        self.wire = wire
        self.spec = spec
        self.encoder = encoder
        self.default = default


_CLASS_INFO: Dict[type, Tuple[FieldInfo, ...]] = {}
_KEY_TABLES: Dict[type, Dict[str, FieldInfo]] = {}


def _spec_of(annotation: Any, decoder: Any, where: str) -> Spec:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return _spec_of(rest[0], decoder, where)
        if set(rest) == {str, Content}:
            return ("str_or_content",)
        raise TypeError("unsupported union in %s" % where)
    if decoder is not None:
        if dataclasses.is_dataclass(annotation):
            # A decoder on a dataclass field only applies the class's
            # _wire_aliases for from_dict; the compiled decoder does that itself.
            return ("dc", annotation)
        try:
            return _DECODER_SPECS[decoder]
        except KeyError:
            raise TypeError("unsupported field decoder in %s" % where) from None
    if origin in (list, List):
        return ("list", _spec_of(args[0], None, where))
    if origin in (dict, Dict):
        return ("str_dict",) if args == (str, str) else ("dict",)
    if annotation is Any:
        return ("any",)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return ("dc", annotation)
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    raise TypeError("unsupported annotation in %s" % where)


def _is_excluded(meta: Mapping[str, Any], class_config: Mapping[str, Any]) -> bool:
    """True for fields never on the wire (``extra``, ``LiveServerMessage.unknown``)."""
    return meta.get("exclude") is not None and meta["exclude"] is not class_config.get("exclude")


def class_info(cls: type) -> Tuple[FieldInfo, ...]:
    """Describe the wire fields of a model class, once."""
    try:
        return _CLASS_INFO[cls]
    except KeyError:
        pass
    hints = typing.get_type_hints(cls)
    class_config = getattr(cls, "dataclass_json_config", None) or {}
    infos = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("dataclasses_json", {})
        if _is_excluded(meta, class_config):
            continue
        letter_case = meta.get("letter_case") or class_config.get("letter_case")
        wire = letter_case(f.name) if letter_case is not None else f.name
        spec = _spec_of(hints[f.name], meta.get("decoder"), "%s.%s" % (cls.__name__, f.name))
        infos.append(FieldInfo(f.name, wire, spec, meta.get("encoder"), f.default))
    result = tuple(infos)
    _CLASS_INFO[cls] = result
    return result


def key_table(cls: type) -> Dict[str, FieldInfo]:
    """Every key accepted for a field of ``cls``: attribute name, wire name, wire aliases."""
    try:
        return _KEY_TABLES[cls]
    except KeyError:
        pass
    table: Dict[str, FieldInfo] = {}
    for info in class_info(cls):
        table[info.name] = info
        table[info.wire] = info
    for alias, attr in getattr(cls, "_wire_aliases", {}).items():
        table[alias] = table[attr]
    _KEY_TABLES[cls] = table
    return table


def catch_all(cls: type) -> Optional[str]:
    """The field of ``cls`` that keeps unknown wire keys, or None."""
    for f in dataclasses.fields(cls):
        if f.metadata.get("livesync_catch_all"):
            return f.name
    return None


def defaults(cls: type) -> Dict[str, Any]:
    """Every attribute of ``cls`` with its default (all model fields have one)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}


def to_wire(value: Any) -> Any:
    """Encode a model (or a list/dict holding models) like ``to_dict()`` does."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: Dict[str, Any] = {}
        for info in class_info(type(value)):
            item = getattr(value, info.name)
            if item is None:
                continue
            out[info.wire] = info.encoder(item) if info.encoder is not None else to_wire(item)
        return out
    if isinstance(value, AbcMapping):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(item) for item in value]
    return value
