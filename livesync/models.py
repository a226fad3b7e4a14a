"""Model metadata from the Gemini API's REST ``models`` endpoints.

:class:`ModelInfo` is what :meth:`Client.get_model <livesync.Client.get_model>`
and :meth:`Client.list_models <livesync.Client.list_models>` return: the fields
of the REST ``Model`` resource that matter to a Live client, frozen.

Wire shape (``GET {root}/{version}/models/{name}`` and ``GET
{root}/{version}/models?pageSize=N&pageToken=T``, key in ``x-goog-api-key``)::

    {"name": "models/gemini-live-2.5-flash", "version": "001",
     "displayName": "...", "description": "...",
     "inputTokenLimit": 131072, "outputTokenLimit": 8192,
     "supportedGenerationMethods": ["bidiGenerateContent", "countTokens"],
     "temperature": 1.0, "maxTemperature": 2.0, "topP": 0.95, "topK": 64,
     "thinking": true}

    {"models": [...], "nextPageToken": "..."}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from .exceptions import ProtocolError

__all__ = ["LIVE_METHOD", "ModelInfo"]

LIVE_METHOD = "bidiGenerateContent"
"""The generation method a model must support to be used with the Live API."""


@dataclass(frozen=True)
class ModelInfo:
    """One model as the REST API describes it. Immutable; safe to share across threads.

    Attributes:
        name: the resource name, ``"models/gemini-live-2.5-flash"``.
        display_name: a human-readable name ("" when not sent).
        description: a short description ("" when not sent).
        version: the model version, e.g. ``"001"`` ("" when not sent).
        base_model_id: the base model's id ("" when not sent).
        supported_generation_methods: e.g. ``("bidiGenerateContent", "countTokens")``.
        input_token_limit: the context window in tokens, when known.
        output_token_limit: the largest reply in tokens, when known.
        temperature, max_temperature, top_p, top_k: sampling defaults, when sent.
        thinking: whether the model thinks, when sent.
    """

    name: str
    display_name: str = ""
    description: str = ""
    version: str = ""
    base_model_id: str = ""
    supported_generation_methods: Tuple[str, ...] = ()
    input_token_limit: Optional[int] = None
    output_token_limit: Optional[int] = None
    temperature: Optional[float] = None
    max_temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    thinking: Optional[bool] = None

    @property
    def supports_live(self) -> bool:
        """Whether the model supports ``bidiGenerateContent`` (the Live API)."""
        return LIVE_METHOD in self.supported_generation_methods

    @property
    def id(self) -> str:
        """The name without ``models/``: what ``Client.connect`` takes."""
        return self.name.split("/", 1)[1] if self.name.startswith("models/") else self.name

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        """Build from a REST ``Model`` object (camelCase); unknown fields are ignored.

        Raises:
            ProtocolError: ``name`` is missing or not a string.
        """
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError("a model in the REST answer has no name")
        methods = data.get("supportedGenerationMethods")
        return cls(
            name=name,
            display_name=_text(data.get("displayName")),
            description=_text(data.get("description")),
            version=_text(data.get("version")),
            base_model_id=_text(data.get("baseModelId")),
            supported_generation_methods=tuple(
                m for m in methods if isinstance(m, str)) if isinstance(methods, list) else (),
            input_token_limit=_int(data.get("inputTokenLimit")),
            output_token_limit=_int(data.get("outputTokenLimit")),
            temperature=_float(data.get("temperature")),
            max_temperature=_float(data.get("maxTemperature")),
            top_p=_float(data.get("topP")),
            top_k=_int(data.get("topK")),
            thinking=data.get("thinking") if isinstance(data.get("thinking"), bool) else None,
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> Optional[int]:
    """An int from a JSON number or an int64 string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _float(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
