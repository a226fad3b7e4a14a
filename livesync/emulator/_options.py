"""The emulator's options as one frozen value, validated and normalised once.

``Emulator(**options)`` builds an :class:`EmulatorOptions` from its keyword
arguments; ``Emulator(EmulatorOptions(...))`` takes one directly. Pure data:
no threads.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
from typing import Any, Callable, Collection, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from ._records import Turn

DEFAULT_MODELS: Tuple[str, ...] = (
    "gemini-live-2.5-flash-preview",
    "gemini-live-2.5-flash",
    "gemini-2.5-flash-native-audio-preview-12-2025",
    "gemini-2.5-flash-native-audio-preview-09-2025",
    "gemini-2.0-flash-live-001",
    "gemini-2.0-flash-live-preview-04-09",
    "gemini-3.1-flash-live-preview",
)
"""Model names the emulator serves (bare names; ``models/`` is optional in setup)."""

Responder = Callable[[Turn], Optional[Iterable[Dict[str, Any]]]]
"""``responder(turn)`` returns server messages for the turn, or None for the default model."""

INTERACTION_STATUS_MODES = (None, "idle", "background")
"""Values of the ``interaction_status`` option."""

ALL_VERSIONS = frozenset({"v1", "v1beta", "v1alpha"})
PREVIEW_VERSIONS = frozenset({"v1beta", "v1alpha"})
#: Versions that serve the ephemeral-token method ``BidiGenerateContentConstrained``.
CONSTRAINED_VERSIONS = ("v1alpha", "v1beta")
_LEGACY_MODEL = re.compile(r"gemini-(?:live-)?2\.")


@dataclasses.dataclass(frozen=True)
class EmulatorOptions:
    """Every option of :class:`~livesync.emulator.Emulator` (see its docstring and
    docs/emulator.md, "Options"). Durations are nominal seconds scaled by
    ``time_scale`` unless documented as real seconds. Model names are stored
    bare (``models/`` removed); collections are stored as frozensets.
    """

    host: str = "127.0.0.1"
    port: int = 0
    api_key: Optional[str] = dataclasses.field(default=None, repr=False)
    time_scale: float = 1.0
    connection_lifetime: float = 600.0
    go_away_notice: float = 60.0
    handle_ttl: float = 7200.0
    audio_session_limit: float = 900.0
    video_session_limit: float = 120.0
    text_frames: bool = False
    chunk_delay: float = 0.0
    input_lag: float = 0.0
    responder: Optional[Responder] = None
    models: Sequence[str] = DEFAULT_MODELS
    resume_refusal: Tuple[int, str] = (1008, "Requested entity was not found.")
    reject_concurrent_resume: bool = True
    concurrent_resume_grace: float = 0.5
    ping_interval: Optional[float] = None
    ping_timeout: Optional[float] = 20.0
    close_timeout: float = 2.0
    open_timeout: float = 5.0
    max_size: Optional[int] = 16 * 1024 * 1024
    text_chunk_chars: int = 16
    audio_chunk_seconds: float = 0.1
    audio_seconds_per_char: float = 0.02
    vad_threshold: float = 500.0
    bearer_tokens: Collection[str] = dataclasses.field(default=(), repr=False)
    record_sent: bool = True
    interaction_status: Optional[str] = None
    background_delay: float = 0.5
    model_versions: Optional[Mapping[str, Collection[str]]] = None
    constrained_versions: Collection[str] = CONSTRAINED_VERSIONS
    refuse_resume_after_deadline: bool = False
    resume_uses_token: bool = False
    media_chunks_models: Optional[Collection[str]] = None
    model_lifetimes: Optional[Mapping[str, float]] = None
    strict_activity_control: bool = False
    validate_setup: bool = True
    ssl_context: Optional[ssl.SSLContext] = None
    rest_only_models: Sequence[str] = ("gemini-2.5-flash",)

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError("time_scale must be positive")
        if self.input_lag < 0:
            raise ValueError("input_lag must not be negative")
        if self.interaction_status not in INTERACTION_STATUS_MODES:
            raise ValueError("interaction_status must be None, 'idle' or 'background'")
        chunks = self.media_chunks_models
        normalised: Dict[str, Any] = {
            "models": tuple(bare(m) for m in self.models),
            "rest_only_models": tuple(bare(m) for m in self.rest_only_models
                                      if bare(m) not in {bare(n) for n in self.models}),
            "resume_refusal": (int(self.resume_refusal[0]), str(self.resume_refusal[1])),
            "bearer_tokens": frozenset(self.bearer_tokens),
            "model_versions": {bare(m): frozenset(v)
                               for m, v in (self.model_versions or {}).items()},
            "constrained_versions": frozenset(self.constrained_versions),
            "media_chunks_models": None if chunks is None else frozenset(bare(m) for m in chunks),
            "model_lifetimes": {bare(m): float(v) for m, v in (self.model_lifetimes or {}).items()},
        }
        for name, value in normalised.items():
            object.__setattr__(self, name, value)

    def serves(self, model: str, version: str) -> bool:
        """Tell whether Gemini API ``version`` serves ``model`` (a bare name).

        ``model_versions`` decides for the models it lists; otherwise ``preview``
        models are served on ``v1beta`` and ``v1alpha`` only, others on ``v1`` too.
        """
        if model not in self.models:
            return False
        versions = (self.model_versions or {}).get(model)
        if versions is None:
            versions = PREVIEW_VERSIONS if "preview" in model else ALL_VERSIONS
        return version in versions

    def rest_serves(self, model: str, version: str) -> bool:
        """Tell whether REST ``GET /{version}/models/{model}`` finds ``model`` (a bare name).

        Live models follow :meth:`serves`; ``rest_only_models`` are found on every
        version (``preview`` ones on ``v1beta`` and ``v1alpha`` only).
        """
        if model in self.rest_only_models:
            return version in (PREVIEW_VERSIONS if "preview" in model else ALL_VERSIONS)
        return self.serves(model, version)

    def accepts_media_chunks(self, model: str) -> bool:
        """Tell whether ``model`` takes ``realtimeInput.mediaChunks`` (2.x models by default)."""
        if self.media_chunks_models is not None:
            return model in self.media_chunks_models
        return _LEGACY_MODEL.match(model) is not None

    def lifetime(self, model: str) -> float:
        """Nominal connection lifetime for ``model`` (``model_lifetimes`` or the default)."""
        return (self.model_lifetimes or {}).get(model, self.connection_lifetime)


def bare(model: str) -> str:
    """A model name without ``models/``."""
    return model[len("models/"):] if model.startswith("models/") else model
