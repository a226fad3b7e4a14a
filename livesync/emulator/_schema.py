"""The proto-JSON schema of ``setup`` and ``contextUpdate``, and a validator for it.

The real service parses client messages with a proto-JSON parser: an unknown
field at any depth, a value of the wrong type or an unknown enum name is
refused (close 1007) before anything else is looked at. Field names are
accepted in lowerCamelCase and in the original snake_case at every depth; error
paths use the snake_case names, as the real messages do::

    Invalid JSON payload received. Unknown name "x" at 'setup.generation_config': Cannot find field.
    Invalid value at 'setup.generation_config.response_modalities[0]'
    (type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig.Modality), "SPEECH"

The table holds every field of the google-genai 3.6.1 Live setup types
(see docs/config-fields.md), for both backends. Free-form values (function
``parameters``, ``response``, ``parametersJsonSchema``, ``labels``, tool
configurations such as ``googleSearch: {}``) are not validated inside.

Type specs: ``string``, ``bool``, ``int32``, ``int64``, ``float``, ``double``,
``bytes``; ``map`` (any JSON object); ``any`` (any JSON value); a message or
enum name from :data:`MESSAGES` / :data:`ENUMS`; a leading ``*`` for repeated.
Pure functions; no threads.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Tuple

from ._wire import camel, decode_b64, snake

MESSAGES: Dict[str, Dict[str, str]] = {
    "BidiGenerateContentSetup": {
        "model": "string", "generationConfig": "GenerationConfig",
        "systemInstruction": "Content", "tools": "*Tool",
        "realtimeInputConfig": "RealtimeInputConfig",
        "sessionResumption": "SessionResumptionConfig",
        "contextWindowCompression": "ContextWindowCompressionConfig",
        "inputAudioTranscription": "AudioTranscriptionConfig",
        "outputAudioTranscription": "AudioTranscriptionConfig",
        "proactivity": "ProactivityConfig", "explicitVadSignal": "bool",
        "avatarConfig": "AvatarConfig", "safetySettings": "*SafetySetting",
        "historyConfig": "HistoryConfig", "labels": "map",
    },
    "GenerationConfig": {
        "audioTimestamp": "bool", "audioTranscriptionConfig": "AudioTranscriptionConfig",
        "candidateCount": "int32", "enableAffectiveDialog": "bool",
        "enableEnhancedCivicAnswers": "bool", "frequencyPenalty": "float",
        "logprobs": "int32", "maxOutputTokens": "int32", "mediaResolution": "MediaResolution",
        "modelSelectionConfig": "map", "presencePenalty": "float", "responseFormat": "any",
        "responseJsonSchema": "any", "responseLogprobs": "bool", "responseMimeType": "string",
        "responseModalities": "*Modality", "responseSchema": "any", "routingConfig": "map",
        "seed": "int32", "speechConfig": "SpeechConfig", "stopSequences": "*string",
        "temperature": "float", "thinkingConfig": "ThinkingConfig", "topK": "float",
        "topP": "float", "translationConfig": "TranslationConfig",
    },
    "SpeechConfig": {
        "languageCode": "string", "multiSpeakerVoiceConfig": "MultiSpeakerVoiceConfig",
        "voiceConfig": "VoiceConfig",
    },
    "VoiceConfig": {
        "prebuiltVoiceConfig": "PrebuiltVoiceConfig",
        "replicatedVoiceConfig": "ReplicatedVoiceConfig", "voice": "string",
    },
    "PrebuiltVoiceConfig": {"voiceName": "string"},
    "ReplicatedVoiceConfig": {
        "consentAudio": "bytes", "mimeType": "string", "voiceConsentSignature": "map",
        "voiceSampleAudio": "bytes",
    },
    "MultiSpeakerVoiceConfig": {"speakerVoiceConfigs": "*SpeakerVoiceConfig"},
    "SpeakerVoiceConfig": {"speaker": "string", "voiceConfig": "VoiceConfig"},
    "RealtimeInputConfig": {
        "activityHandling": "ActivityHandling",
        "automaticActivityDetection": "AutomaticActivityDetection",
        "interimTranscriptTimestampEnabled": "bool", "turnCoverage": "TurnCoverage",
    },
    "AutomaticActivityDetection": {
        "disabled": "bool", "endOfSpeechSensitivity": "EndSensitivity",
        "prefixPaddingMs": "int32", "silenceDurationMs": "int32",
        "startOfSpeechSensitivity": "StartSensitivity",
    },
    "SessionResumptionConfig": {"handle": "string", "transparent": "bool"},
    "ContextWindowCompressionConfig": {"slidingWindow": "SlidingWindow", "triggerTokens": "int64"},
    "SlidingWindow": {"targetTokens": "int64"},
    "AudioTranscriptionConfig": {
        "adaptationPhrases": "*string", "customVocabulary": "*string", "diarization": "bool",
        "languageAuto": "map", "languageCodes": "*string", "languageHints": "map",
        "mode": "AudioTranscriptionConfigMode", "sourceText": "string", "wordTimestamp": "bool",
    },
    "ProactivityConfig": {"proactiveAudio": "bool", "proactiveVideo": "bool"},
    "ThinkingConfig": {
        "includeThoughts": "bool", "thinkingBudget": "int32", "thinkingLevel": "ThinkingLevel",
    },
    "TranslationConfig": {"echoTargetLanguage": "bool", "targetLanguageCode": "string"},
    "HistoryConfig": {"initialHistoryInClientContent": "bool"},
    "AvatarConfig": {
        "audioBitrateBps": "int32", "avatarName": "string",
        "customizedAvatar": "CustomizedAvatar", "videoBitrateBps": "int32",
    },
    "CustomizedAvatar": {"imageData": "bytes", "imageMimeType": "string"},
    "SafetySetting": {"category": "string", "method": "HarmBlockMethod", "threshold": "string"},
    "Tool": {
        "codeExecution": "map", "computerUse": "map", "enterpriseWebSearch": "map",
        "exaAiSearch": "map", "fileSearch": "map", "functionDeclarations": "*FunctionDeclaration",
        "googleMaps": "map", "googleSearch": "map", "googleSearchRetrieval": "map",
        "mcpServers": "any", "parallelAiSearch": "map", "retrieval": "map", "urlContext": "map",
    },
    "FunctionDeclaration": {
        "behavior": "Behavior", "description": "string", "name": "string",
        "parameters": "map", "parametersJsonSchema": "any", "response": "map",
        "responseJsonSchema": "any",
    },
    "Content": {"parts": "*Part", "role": "string"},
    "Part": {
        "audioMetadata": "map", "audioTranscription": "map", "codeExecutionResult": "map",
        "documentMetadata": "map", "executableCode": "map", "fileData": "map",
        "functionCall": "map", "functionResponse": "map", "inlineData": "Blob",
        "mediaProcessing": "any", "mediaResolution": "any", "partMetadata": "map",
        "speechMetadata": "map", "spreadsheetMetadata": "map", "text": "string",
        "thought": "bool", "thoughtSignature": "bytes", "toolCall": "map",
        "toolResponse": "map", "videoMetadata": "map",
    },
    "Blob": {"data": "bytes", "displayName": "string", "mimeType": "string"},
    "BidiGenerateContentContextUpdate": {
        "systemInstruction": "Content", "tools": "ContextUpdateTools",
    },
    "ContextUpdateTools": {"tools": "*Tool"},
}
"""Message name -> {lowerCamelCase field -> type spec}."""

ENUMS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "Modality": ("GenerationConfig.Modality",
                 ("MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO", "VIDEO")),
    "MediaResolution": ("GenerationConfig.MediaResolution",
                        ("MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW",
                         "MEDIA_RESOLUTION_MEDIUM", "MEDIA_RESOLUTION_HIGH")),
    "ActivityHandling": ("RealtimeInputConfig.ActivityHandling",
                         ("ACTIVITY_HANDLING_UNSPECIFIED", "START_OF_ACTIVITY_INTERRUPTS",
                          "NO_INTERRUPTION")),
    "TurnCoverage": ("RealtimeInputConfig.TurnCoverage",
                     ("TURN_COVERAGE_UNSPECIFIED", "TURN_INCLUDES_ONLY_ACTIVITY",
                      "TURN_INCLUDES_ALL_INPUT", "TURN_INCLUDES_AUDIO_ACTIVITY_AND_ALL_VIDEO")),
    "StartSensitivity": ("AutomaticActivityDetection.StartSensitivity",
                         ("START_SENSITIVITY_UNSPECIFIED", "START_SENSITIVITY_HIGH",
                          "START_SENSITIVITY_LOW")),
    "EndSensitivity": ("AutomaticActivityDetection.EndSensitivity",
                       ("END_SENSITIVITY_UNSPECIFIED", "END_SENSITIVITY_HIGH",
                        "END_SENSITIVITY_LOW")),
    "ThinkingLevel": ("ThinkingConfig.ThinkingLevel",
                      ("THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH",
                       "XHIGH")),
    "Behavior": ("FunctionDeclaration.Behavior", ("UNSPECIFIED", "BLOCKING", "NON_BLOCKING")),
    "AudioTranscriptionConfigMode": ("AudioTranscriptionConfig.Mode",
                                     ("MODE_UNSPECIFIED", "VERBATIM", "SMART")),
    "HarmBlockMethod": ("SafetySetting.HarmBlockMethod",
                        ("HARM_BLOCK_METHOD_UNSPECIFIED", "SEVERITY", "PROBABILITY")),
}
"""Enum name -> (qualified proto name for messages, accepted value names)."""

_SCALARS = {
    "string": "TYPE_STRING", "bool": "TYPE_BOOL", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float": "TYPE_FLOAT", "double": "TYPE_DOUBLE", "bytes": "TYPE_BYTES",
}


def validate(value: Any, message: str, path: str, package: str) -> Optional[str]:
    """Return the 1007 reason for the first proto-JSON error in ``value``, or None.

    Args:
        value: The decoded JSON value (e.g. the body under ``setup``).
        message: Its message name in :data:`MESSAGES`.
        path: Its snake_case path (``"setup"``).
        package: Proto package for type URLs (``google.ai.generativelanguage.v1beta``).
    """
    return _check(value, message, path, package)


def _check(value: Any, spec: str, path: str, package: str) -> Optional[str]:
    if value is None:
        return None  # JSON null is "not set"
    if spec.startswith("*"):
        if not isinstance(value, list):
            return _invalid(path, spec[1:], value, package)
        for i, item in enumerate(value):
            error = _check(item, spec[1:], f"{path}[{i}]", package)
            if error:
                return error
        return None
    if spec == "any":
        return None
    if spec == "map":
        return None if isinstance(value, dict) else _invalid(path, spec, value, package)
    if spec in _SCALARS:
        return None if _scalar_ok(value, spec) else _invalid(path, spec, value, package)
    if spec in ENUMS:
        names = ENUMS[spec][1]
        ok = value in names or (isinstance(value, int) and not isinstance(value, bool))
        return None if ok else _invalid(path, spec, value, package)
    if not isinstance(value, dict):
        return _invalid(path, spec, value, package)
    fields = MESSAGES[spec]
    for key, item in value.items():
        name = camel(str(key))
        if name not in fields:
            return (f'Invalid JSON payload received. Unknown name "{key}" at \'{path}\': '
                    "Cannot find field.")
        error = _check(item, fields[name], f"{path}.{snake(name)}", package)
        if error:
            return error
    return None


def _scalar_ok(value: Any, spec: str) -> bool:
    if spec == "string":
        return isinstance(value, str)
    if spec == "bool":
        return isinstance(value, bool)
    if spec == "bytes":
        return decode_b64(value) is not None
    if isinstance(value, bool):
        return False
    if spec in ("int32", "int64"):
        if isinstance(value, float):
            return value.is_integer()
        if isinstance(value, str):
            return value.strip().lstrip("-").isdigit()
        return isinstance(value, int)
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, (int, float))


def _invalid(path: str, spec: str, value: Any, package: str) -> str:
    if spec in _SCALARS:
        kind = _SCALARS[spec]
    elif spec in ("map", "any"):
        kind = "type.googleapis.com/google.protobuf.Struct"
    else:
        name = ENUMS[spec][0] if spec in ENUMS else spec
        kind = f"type.googleapis.com/{package}.{name}"
    return f"Invalid value at '{path}' ({kind}), {json.dumps(value)}"


def package_for(backend: str, api_version: str) -> str:
    """Return the proto package named in type URLs for a backend and API version."""
    if backend == "vertex":
        return f"google.cloud.aiplatform.{api_version}"
    return f"google.ai.generativelanguage.{api_version}"
