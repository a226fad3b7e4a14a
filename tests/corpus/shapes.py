"""Server and client message shapes of the Live API, as data.

Each :class:`ServerShape` is one server frame exactly as it travels (``raw``,
a JSON text: the real service pretty-prints with two-space indents), the
``kind`` livesync must report, and spot checks on the decoded
:class:`livesync.LiveServerMessage`:

- ``expect`` maps an attribute path (``server_content.model_turn.parts[0].text``,
  properties such as ``text`` and ``data`` included) to its decoded value;
- ``unknown`` is the expected ``LiveServerMessage.unknown`` (top-level keys
  livesync does not know).

``origin`` says where the shape comes from:

- ``recorded``: the shape occurs in the 19 recorded real sessions (the values
  here are invented);
- ``documented``: Google's SDKs, proto or docs describe it; not in the recordings;
- ``observed``: reported by third parties against the real service;
- ``2026``: added by the service or google-genai 3.x (docs/protocol.md);
- ``defensive``: not seen, but a decoder must survive it (proto3 JSON allows it).

Each :class:`ClientShape` is one client message as a JSON-ready dict.
``camel`` is False for the snake_case forms the Python SDK really sends (the
server accepts them); ``canonical`` then names the camelCase twin.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "CLIENT_SHAPES",
    "ClientShape",
    "SERVER_SHAPES",
    "ServerShape",
    "client_shape",
    "server_shape",
]

ORIGINS = ("recorded", "documented", "observed", "2026", "defensive")


@dataclass(frozen=True)
class ServerShape:
    """One server frame and what decoding it must give."""

    name: str
    raw: str
    kind: str
    origin: str
    expect: Mapping[str, Any] = field(default_factory=dict)
    unknown: Optional[Mapping[str, Any]] = None
    note: str = ""

    @property
    def wire(self) -> Dict[str, Any]:
        """The frame parsed as plain JSON."""
        value: Dict[str, Any] = json.loads(self.raw)
        return value


@dataclass(frozen=True)
class ClientShape:
    """One client message."""

    name: str
    message: Mapping[str, Any]
    backend: str = "any"  # "gemini", "vertex" or "any"
    camel: bool = True
    canonical: Optional[str] = None
    deprecated: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        """The top-level key (the oneof case)."""
        (key,) = self.message
        return key


def _pretty(message: Mapping[str, Any]) -> str:
    """The server's form: two-space indents, UTF-8 text, a trailing newline."""
    return json.dumps(message, indent=2, ensure_ascii=False) + "\n"


def _compact(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _s(seconds: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=seconds)


# Invented values. Audio: 16-bit PCM samples chosen so that the base64 text
# holds "+" and "/" (standard alphabet) or "-" and "_" (URL-safe alphabet).
PCM_A = b"\xfb\xef\xbe\xff\x00\x10"  # standard "++++/wAQ", URL-safe "----_wAQ"
PCM_B = b"\xfa\xff\x3f\x01"  # "+v8/AQ==" / "-v8_AQ=="
PCM_C = b"\x01\x00\xff\xff\x02\x00"  # "AQD//wIA" / "AQD__wIA"
HANDLE = "CiRzaGFwZS1jb3JwdXMtaGFuZGxlLW5vdC1hLXJlYWwtb25l"  # not a real handle
HANDLE_2 = "CiRzZWNvbmQtY29ycHVzLWhhbmRsZS1ub3QtcmVhbA"
SESSION_ID = "0c0ffee0-1234-4abc-8def-000000000001"
CALL_ID = "function-call-1111111111111111111"
CALL_UUID = "00000000-aaaa-4bbb-8ccc-000000000042"

SERVER_SHAPES: Tuple[ServerShape, ...] = (
    # --- setupComplete -----------------------------------------------------------------
    ServerShape(
        "setup_complete_empty",
        '{\n  "setupComplete": {}\n}\n',
        "setup_complete",
        "recorded",
        {"setup_complete.session_id": None},
        note="Gemini API: always an empty object in the recordings.",
    ),
    ServerShape(
        "setup_complete_vertex_session_id",
        _pretty({"setupComplete": {"sessionId": SESSION_ID}}),
        "setup_complete",
        "recorded",
        {"setup_complete.session_id": SESSION_ID},
        note="Vertex sends a server-assigned session id.",
    ),
    ServerShape(
        "setup_complete_voice_consent",
        _pretty({"setupComplete": {"voiceConsentSignature": {"signature": "c2lnbmF0dXJl"}}}),
        "setup_complete",
        "documented",
        {"setup_complete.voice_consent_signature.signature": "c2lnbmF0dXJl"},
        note="Returned after a replicated voice's consent audio was verified.",
    ),
    # --- serverContent: model output ---------------------------------------------------
    ServerShape(
        "text_part_gemini",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"text": "Sure, I'"}]}}}),
        "server_content",
        "recorded",
        {"text": "Sure, I'", "data": None, "server_content.model_turn.role": None},
        note="The Gemini API omits the role; text streams in small pieces.",
    ),
    ServerShape(
        "text_part_vertex_role",
        _pretty({"serverContent": {"modelTurn": {"role": "model",
                                                 "parts": [{"text": "ll help.\n"}]}}}),
        "server_content",
        "recorded",
        {"text": "ll help.\n", "server_content.model_turn.role": "model"},
    ),
    ServerShape(
        "audio_standard_base64",
        _pretty({"serverContent": {"modelTurn": {"role": "model", "parts": [
            {"inlineData": {"mimeType": "audio/pcm", "data": "++++/wAQ"}}]}}}),
        "server_content",
        "recorded",
        {"server_content.model_turn.parts[0].inline_data.mime_type": "audio/pcm",
         "server_content.model_turn.parts[0].inline_data.data": PCM_A,
         "data": PCM_A, "text": None},
        note="Vertex audio: mimeType without a rate, standard base64 with '+' and '/'.",
    ),
    ServerShape(
        "audio_urlsafe_base64",
        _pretty({"serverContent": {"modelTurn": {"parts": [
            {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "-v8_AQ=="}}]}}}),
        "server_content",
        "documented",
        {"server_content.model_turn.parts[0].inline_data.mime_type": "audio/pcm;rate=24000",
         "data": PCM_B},
        note="URL-safe alphabet: proto3 JSON parsers accept both; the Python SDK writes it.",
    ),
    ServerShape(
        "audio_unpadded_base64",
        _pretty({"serverContent": {"modelTurn": {"parts": [
            {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": "+v8/AQ"}}]}}}),
        "server_content",
        "defensive",
        {"data": PCM_B},
        note="Padding is optional in proto3 JSON bytes.",
    ),
    ServerShape(
        "audio_two_parts",
        _pretty({"serverContent": {"modelTurn": {"role": "model", "parts": [
            {"inlineData": {"mimeType": "audio/pcm", "data": "++++/wAQ"}},
            {"inlineData": {"mimeType": "audio/pcm", "data": "AQD__wIA"}}]}}}),
        "server_content",
        "defensive",
        {"data": PCM_A + PCM_C},
        note="Several parts in one message: .data joins them, either alphabet.",
    ),
    ServerShape(
        "thought_parts",
        _pretty({"serverContent": {"modelTurn": {"parts": [
            {"text": "**Planning** the answer", "thought": True},
            {"text": "Paris.", "thoughtSignature": "c2ln"}]}}}),
        "server_content",
        "documented",
        {"text": "Paris.",
         "server_content.model_turn.parts[0].thought": True,
         "server_content.model_turn.parts[1].thought_signature": b"sig"},
        note="Thought parts (thinkingConfig.includeThoughts) are left out of .text.",
    ),
    ServerShape(
        "executable_code",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"executableCode": {
            "language": "PYTHON",
            "code": "print(default_api.lookup(city='Oslo'))"}}]}}}),
        "server_content",
        "recorded",
        {"server_content.model_turn.parts[0].executable_code.language": "PYTHON",
         "server_content.model_turn.parts[0].executable_code.code":
             "print(default_api.lookup(city='Oslo'))",
         "text": None},
        note="Gemini API: the model writes code that calls the tool before the toolCall.",
    ),
    ServerShape(
        "code_execution_result",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"codeExecutionResult": {
            "outcome": "OUTCOME_OK", "output": "42\n"}}]}}}),
        "server_content",
        "documented",
        {"server_content.model_turn.parts[0].code_execution_result.outcome": "OUTCOME_OK",
         "server_content.model_turn.parts[0].code_execution_result.output": "42\n"},
    ),
    ServerShape(
        "code_execution_ids",
        _pretty({"serverContent": {"modelTurn": {"parts": [
            {"executableCode": {"id": "code-1", "language": "PYTHON", "code": "print(6*7)"}},
            {"codeExecutionResult": {"id": "code-1", "outcome": "OUTCOME_OK", "output": "42"}},
        ]}}}),
        "server_content",
        "2026",
        {"server_content.model_turn.parts[0].executable_code.code": "print(6*7)",
         "server_content.model_turn.parts[0].executable_code.id": "code-1",
                 "server_content.model_turn.parts[1].code_execution_result.id": "code-1"},
    ),
    ServerShape(
        "final_content_with_turn_end",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"text": "Done."}]},
                                   "generationComplete": True, "turnComplete": True}}),
        "server_content",
        "documented",
        {"text": "Done.", "server_content.generation_complete": True,
         "server_content.turn_complete": True},
        note="The last content may arrive in the same message as the turn end.",
    ),
    # --- serverContent: transcriptions ---------------------------------------------------
    ServerShape(
        "output_transcription",
        _pretty({"serverContent": {"outputTranscription": {"text": " we could talk"}}}),
        "server_content",
        "recorded",
        {"server_content.output_transcription.text": " we could talk", "text": None},
    ),
    ServerShape(
        "output_transcription_empty",
        _pretty({"serverContent": {"outputTranscription": {}}}),
        "server_content",
        "recorded",
        {"server_content.output_transcription.text": None},
        note="Vertex sends an empty transcription first.",
    ),
    ServerShape(
        "input_transcription",
        _pretty({"serverContent": {"inputTranscription": {"text": "what's the time"}}}),
        "server_content",
        "documented",
        {"server_content.input_transcription.text": "what's the time"},
    ),
    ServerShape(
        "transcription_details",
        _pretty({"serverContent": {"inputTranscription": {
            "text": "hola", "finished": True, "languageCode": "es-ES", "speakerLabel": "1",
            "words": [{"word": "hola", "startOffset": "0.120s", "endOffset": "0.480s"}]}}}),
        "server_content",
        "documented",
        {"server_content.input_transcription.finished": True,
         "server_content.input_transcription.language_code": "es-ES",
         "server_content.input_transcription.speaker_label": "1",
         "server_content.input_transcription.words[0].word": "hola",
         "server_content.input_transcription.words[0].start_offset": _s(0.12),
                 "server_content.input_transcription.words[0].end_offset": _s(0.48)},
    ),
    ServerShape(
        "transcription_offsets",
        _pretty({"serverContent": {"outputTranscription": {
            "text": "Hello", "startOffset": "1.5s", "endOffset": "2.25s"}}}),
        "server_content",
        "2026",
        {"server_content.output_transcription.text": "Hello",
         "server_content.output_transcription.start_offset": _s(1.5),
                 "server_content.output_transcription.end_offset": _s(2.25)},
        note="Transcription.startOffset/endOffset (3.x); with "
             "realtimeInputConfig.interimTranscriptTimestampEnabled.",
    ),
    ServerShape(
        "interim_input_transcription",
        _pretty({"serverContent": {"interimInputTranscription": {"text": "what's the"}}}),
        "server_content",
        "2026",
        {"server_content.interim_input_transcription.text": "what's the"},
        note="Low-latency partial transcript while the user speaks.",
    ),
    # --- serverContent: turn state -------------------------------------------------------
    ServerShape(
        "generation_complete",
        _pretty({"serverContent": {"generationComplete": True}}),
        "server_content",
        "recorded",
        {"server_content.generation_complete": True, "server_content.turn_complete": None},
    ),
    ServerShape(
        "turn_complete",
        _pretty({"serverContent": {"turnComplete": True}}),
        "server_content",
        "documented",
        {"server_content.turn_complete": True, "usage_metadata": None},
    ),
    ServerShape(
        "interrupted",
        _pretty({"serverContent": {"interrupted": True}}),
        "server_content",
        "documented",
        {"server_content.interrupted": True, "server_content.generation_complete": None},
        note="No generationComplete for an interrupted turn; turnComplete follows.",
    ),
    ServerShape(
        "interrupted_and_turn_complete",
        _pretty({"serverContent": {"interrupted": True, "turnComplete": True}}),
        "server_content",
        "defensive",
        {"server_content.interrupted": True, "server_content.turn_complete": True},
    ),
    ServerShape(
        "turn_complete_reason_waiting",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"text": "Which city?"}]},
                                   "turnComplete": True,
                                   "turnCompleteReason": "NEED_MORE_INPUT",
                                   "waitingForInput": True}}),
        "server_content",
        "2026",
        {"server_content.turn_complete_reason": "NEED_MORE_INPUT",
         "server_content.waiting_for_input": True, "text": "Which city?"},
    ),
    ServerShape(
        "turn_complete_reason_unknown_value",
        _pretty({"serverContent": {"turnComplete": True,
                                   "turnCompleteReason": "SOME_FUTURE_REASON"}}),
        "server_content",
        "defensive",
        {"server_content.turn_complete_reason": "SOME_FUTURE_REASON"},
        note="Enum values newer than livesync are kept as strings.",
    ),
    ServerShape(
        "interaction_in_progress",
        _pretty({"serverContent": {"turnComplete": True, "interactionStatus": "IN_PROGRESS"}}),
        "server_content",
        "2026",
        {"server_content.turn_complete": True,
         "server_content.interaction_status": "IN_PROGRESS"},
        note="More model output may follow: the turn is not over.",
    ),
    ServerShape(
        "interaction_background_output",
        _pretty({"serverContent": {"modelTurn": {"parts": [{"text": "Found it: 12 results."}]}}}),
        "server_content",
        "2026",
        {"text": "Found it: 12 results.", "server_content.interaction_status": None},
        note="Output between turnComplete+IN_PROGRESS and turnComplete+IDLE.",
    ),
    ServerShape(
        "interaction_idle",
        _pretty({"serverContent": {"turnComplete": True, "interactionStatus": "IDLE"}}),
        "server_content",
        "2026",
        {"server_content.turn_complete": True, "server_content.interaction_status": "IDLE"},
        note="The turn is over.",
    ),
    ServerShape(
        "interaction_requires_action",
        _pretty({"serverContent": {"turnComplete": True,
                                   "interactionStatus": "REQUIRES_ACTION"}}),
        "server_content",
        "2026",
        {"server_content.interaction_status": "REQUIRES_ACTION"},
        note="Deprecated value; still decoded as a string.",
    ),
    ServerShape(
        "grounding_metadata",
        _pretty({"serverContent": {"groundingMetadata": {
            "webSearchQueries": ["weather oslo"],
            "groundingChunks": [{"web": {"uri": "https://example.com/oslo", "title": "Oslo"}}],
            "searchEntryPoint": {"renderedContent": "<div>…</div>"}}}}),
        "server_content",
        "documented",
        {"server_content.grounding_metadata": {
            "webSearchQueries": ["weather oslo"],
            "groundingChunks": [{"web": {"uri": "https://example.com/oslo", "title": "Oslo"}}],
            "searchEntryPoint": {"renderedContent": "<div>…</div>"}}},
        note="With googleSearch; kept as a plain mapping.",
    ),
    ServerShape(
        "url_context_metadata",
        _pretty({"serverContent": {"urlContextMetadata": {"urlMetadata": [
            {"retrievedUrl": "https://example.com/", "urlRetrievalStatus":
                "URL_RETRIEVAL_STATUS_SUCCESS"}]}}}),
        "server_content",
        "documented",
        {"server_content.url_context_metadata.urlMetadata[0].retrievedUrl":
            "https://example.com/"},
    ),
    # --- usageMetadata -------------------------------------------------------------------
    ServerShape(
        "turn_complete_with_usage",
        _pretty({"serverContent": {"turnComplete": True}, "usageMetadata": {
            "promptTokenCount": 321, "responseTokenCount": 21, "totalTokenCount": 342,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 321}],
            "responseTokensDetails": [{"modality": "TEXT", "tokenCount": 21}]}}),
        "server_content",
        "recorded",
        {"server_content.turn_complete": True,
         "usage_metadata.prompt_token_count": 321,
         "usage_metadata.response_token_count": 21,
         "usage_metadata.total_token_count": 342,
         "usage_metadata.prompt_tokens_details[0].modality": "TEXT",
         "usage_metadata.response_tokens_details[0].token_count": 21},
        note="usageMetadata is not part of the oneof: it rides beside serverContent.",
    ),
    ServerShape(
        "usage_int64_strings",
        _pretty({"serverContent": {"turnComplete": True}, "usageMetadata": {
            "promptTokenCount": "900", "responseTokenCount": "100",
            "totalTokenCount": "9007199254740993",
            "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": "100"}]}}),
        "server_content",
        "documented",
        {"usage_metadata.prompt_token_count": 900,
         "usage_metadata.response_token_count": 100,
         "usage_metadata.total_token_count": 9007199254740993,
         "usage_metadata.response_tokens_details[0].token_count": 100},
        note="proto3 JSON writes int64 as strings; values above 2**53 stay exact.",
    ),
    ServerShape(
        "usage_vertex_names",
        _pretty({"serverContent": {"turnComplete": True}, "usageMetadata": {
            "promptTokenCount": 120, "candidatesTokenCount": 30, "totalTokenCount": 150,
            "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 30}],
            "trafficType": "ON_DEMAND"}}),
        "server_content",
        "documented",
        {"usage_metadata.response_token_count": 30,
         "usage_metadata.response_tokens_details[0].modality": "AUDIO",
         "usage_metadata.response_tokens_details[0].token_count": 30,
         "usage_metadata.traffic_type": "ON_DEMAND"},
        note="Vertex names the response counts candidates*.",
    ),
    ServerShape(
        "usage_every_count",
        _pretty({"usageMetadata": {
            "promptTokenCount": 10, "cachedContentTokenCount": 4, "responseTokenCount": 5,
            "toolUsePromptTokenCount": 3, "thoughtsTokenCount": 7, "totalTokenCount": 29,
            "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 4}],
            "toolUsePromptTokensDetails": [{"modality": "TEXT", "tokenCount": 3}],
            "serviceTier": "STANDARD"}}),
        "usage_metadata",
        "documented",
        {"usage_metadata.cached_content_token_count": 4,
         "usage_metadata.tool_use_prompt_token_count": 3,
         "usage_metadata.thoughts_token_count": 7,
         "usage_metadata.cache_tokens_details[0].token_count": 4,
         "usage_metadata.tool_use_prompt_tokens_details[0].token_count": 3,
         "usage_metadata.service_tier": "STANDARD",
         "server_content": None},
        note="Usage alone in a message: kind 'usage_metadata'.",
    ),
    # --- toolCall / toolCallCancellation ------------------------------------------------------
    ServerShape(
        "tool_call_gemini_id",
        _pretty({"toolCall": {"functionCalls": [
            {"name": "lookup", "args": {"city": "Oslo"}, "id": CALL_ID}]}}),
        "tool_call",
        "recorded",
        {"tool_call.function_calls[0].id": CALL_ID,
         "tool_call.function_calls[0].name": "lookup",
         "tool_call.function_calls[0].args": {"city": "Oslo"}},
        note="Gemini API ids look like function-call-<digits>.",
    ),
    ServerShape(
        "tool_call_vertex_uuid",
        _pretty({"toolCall": {"functionCalls": [
            {"name": "lookup", "args": {"city": "Oslo"}, "id": CALL_UUID}]}}),
        "tool_call",
        "recorded",
        {"tool_call.function_calls[0].id": CALL_UUID},
        note="Vertex ids are UUIDs.",
    ),
    ServerShape(
        "tool_call_without_id",
        _pretty({"toolCall": {"functionCalls": [{"name": "get_status", "args": {}}]}}),
        "tool_call",
        "documented",
        {"tool_call.function_calls[0].id": None,
         "tool_call.function_calls[0].args": {}},
        note="The id is optional on Vertex; answers then carry no id either.",
    ),
    ServerShape(
        "tool_call_several",
        _pretty({"toolCall": {"functionCalls": [
            {"name": "turn_on", "id": "function-call-1"},
            {"name": "set_level", "args": {"level": 3, "unit": None, "tags": ["a"]},
             "id": "function-call-2"}]}}),
        "tool_call",
        "documented",
        {"tool_call.function_calls[0].args": None,
         "tool_call.function_calls[1].args": {"level": 3, "unit": None, "tags": ["a"]}},
        note="No args key when the function takes none; args are any JSON.",
    ),
    ServerShape(
        "tool_call_streaming_args",
        _pretty({"toolCall": {"functionCalls": [
            {"name": "lookup", "id": "function-call-3", "willContinue": True,
             "partialArgs": [{"jsonPath": "$.city", "stringValue": "Os"}]}]}}),
        "tool_call",
        "2026",
        {"tool_call.function_calls[0].name": "lookup",
         "tool_call.function_calls[0].will_continue": True,
                 "tool_call.function_calls[0].partial_args[0].json_path": "$.city",
                 "tool_call.function_calls[0].partial_args[0].string_value": "Os"},
        note="FunctionCall.willContinue/partialArgs (google-genai 3.x types).",
    ),
    ServerShape(
        "tool_call_cancellation",
        _pretty({"toolCallCancellation": {"ids": [CALL_ID, "function-call-2"]}}),
        "tool_call_cancellation",
        "documented",
        {"tool_call_cancellation.ids": [CALL_ID, "function-call-2"]},
    ),
    # --- goAway ---------------------------------------------------------------------------
    ServerShape(
        "go_away_seconds",
        _pretty({"goAway": {"timeLeft": "50s"}}),
        "go_away",
        "documented",
        {"go_away.time_left": _s(50)},
    ),
    ServerShape(
        "go_away_fractional",
        _pretty({"goAway": {"timeLeft": "9.5s"}}),
        "go_away",
        "documented",
        {"go_away.time_left": _s(9.5)},
    ),
    ServerShape(
        "go_away_nanoseconds",
        _pretty({"goAway": {"timeLeft": "0.250000001s"}}),
        "go_away",
        "defensive",
        {"go_away.time_left": _s(0.25)},
        note="Durations carry up to 9 fractional digits; below a microsecond is dropped.",
    ),
    ServerShape(
        "go_away_one_second",
        _compact({"goAway": {"timeLeft": "1s"}}),
        "go_away",
        "observed",
        {"go_away.time_left": _s(1)},
        note="Shortly before a forced 1011 'Deadline expired …' close.",
    ),
    # --- sessionResumptionUpdate -------------------------------------------------------------
    ServerShape(
        "resumption_update_empty",
        _pretty({"sessionResumptionUpdate": {}}),
        "session_resumption_update",
        "documented",
        {"session_resumption_update.resumable": False,
         "session_resumption_update.new_handle": None,
         "session_resumption_update.last_consumed_client_message_index": None},
        note="Not resumable now (proto3 drops false and ''); keep the previous handle.",
    ),
    ServerShape(
        "resumption_update_handle",
        _pretty({"sessionResumptionUpdate": {"newHandle": HANDLE, "resumable": True}}),
        "session_resumption_update",
        "documented",
        {"session_resumption_update.resumable": True,
         "session_resumption_update.new_handle": HANDLE},
    ),
    ServerShape(
        "resumption_update_transparent_index",
        _pretty({"sessionResumptionUpdate": {"newHandle": HANDLE_2, "resumable": True,
                                             "lastConsumedClientMessageIndex": "42"}}),
        "session_resumption_update",
        "documented",
        {"session_resumption_update.new_handle": HANDLE_2,
         "session_resumption_update.last_consumed_client_message_index": 42},
        note="Vertex transparent resumption only; int64 as a string.",
    ),
    ServerShape(
        "resumption_update_index_number",
        _pretty({"sessionResumptionUpdate": {"newHandle": HANDLE_2, "resumable": True,
                                             "lastConsumedClientMessageIndex": 7}}),
        "session_resumption_update",
        "defensive",
        {"session_resumption_update.last_consumed_client_message_index": 7},
    ),
    ServerShape(
        "resumption_update_handle_not_resumable",
        _pretty({"sessionResumptionUpdate": {"newHandle": HANDLE_2}}),
        "session_resumption_update",
        "defensive",
        {"session_resumption_update.resumable": False,
         "session_resumption_update.new_handle": HANDLE_2},
        note="A handle without resumable=true must not replace the stored one.",
    ),
    # --- voice activity ---------------------------------------------------------------------
    ServerShape(
        "voice_activity_start",
        _pretty({"voiceActivity": {"type": "ACTIVITY_START", "audioOffset": "1.5s"}}),
        "voice_activity",
        "documented",
        {"voice_activity.voice_activity_type": "ACTIVITY_START",
         "voice_activity.audio_offset": _s(1.5)},
        note="Wire name 'type', attribute voice_activity_type.",
    ),
    ServerShape(
        "voice_activity_end",
        _pretty({"voiceActivity": {"type": "ACTIVITY_END"}}),
        "voice_activity",
        "documented",
        {"voice_activity.voice_activity_type": "ACTIVITY_END",
         "voice_activity.audio_offset": None},
    ),
    ServerShape(
        "vad_signal",
        _pretty({"voiceActivityDetectionSignal": {"vadSignalType": "VAD_SIGNAL_TYPE_SOS"}}),
        "voice_activity_detection_signal",
        "documented",
        {"voice_activity_detection_signal.vad_signal_type": "VAD_SIGNAL_TYPE_SOS"},
        note="Vertex, allowlisted (explicitVadSignal).",
    ),
    # --- forward compatibility and JSON form ------------------------------------------------
    ServerShape(
        "unknown_top_level_only",
        _pretty({"futureMessage": {"field": [1, "two"]}}),
        "unknown",
        "defensive",
        unknown={"futureMessage": {"field": [1, "two"]}},
        note="A message type newer than livesync: kind 'unknown', never an error.",
    ),
    ServerShape(
        "unknown_top_level_beside_known",
        _pretty({"serverContent": {"turnComplete": True}, "futureStats": {"latencyMs": 12}}),
        "server_content",
        "defensive",
        {"server_content.turn_complete": True},
        unknown={"futureStats": {"latencyMs": 12}},
    ),
    ServerShape(
        "unknown_nested_fields",
        _pretty({"serverContent": {
            "modelTurn": {"parts": [{"text": "Hi", "speechMetadata": {"speaker": "A"}}],
                          "futureContentField": True},
            "futureServerContentField": "x"}}),
        "server_content",
        "2026",
        {"text": "Hi",
         "server_content.extra": {"futureServerContentField": "x"}},
        note="Unknown fields inside known messages are kept in the model's extra.",
    ),
    ServerShape(
        "compact_single_line",
        _compact({"serverContent": {"modelTurn": {"parts": [{"text": "compact"}]}}}),
        "server_content",
        "defensive",
        {"text": "compact"},
        note="Never assume pretty-printing either.",
    ),
    ServerShape(
        "non_ascii_text",
        '{\n  "serverContent": {\n    "modelTurn": {\n      "parts": [\n        {\n'
        '          "text": "Grüße 😀 caf\\u00e9 \\ud83d\\ude00 \\"q\\"\\n"\n        }\n'
        '      ]\n    }\n  }\n}\n',
        "server_content",
        "defensive",
        {"text": "Grüße 😀 café 😀 \"q\"\n"},
        note="Raw UTF-8 and \\u escapes (with a surrogate pair) in one text.",
    ),
    ServerShape(
        "null_fields",
        _pretty({"serverContent": {"modelTurn": None, "turnComplete": True,
                                   "inputTranscription": None}}),
        "server_content",
        "defensive",
        {"server_content.model_turn": None, "server_content.turn_complete": True},
        note="JSON null reads as absent.",
    ),
)


def _blob(data: str, mime: str = "audio/pcm;rate=16000") -> Dict[str, str]:
    return {"mimeType": mime, "data": data}


_WEATHER_TOOL = {"functionDeclarations": [{
    "name": "lookup",
    "description": "Look up the weather in a city",
    "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}},
                   "required": ["city"]}}]}
_GEMINI_MODEL = "models/gemini-live-2.5-flash-preview"
_VERTEX_MODEL = ("projects/my-project/locations/us-central1/publishers/google/models/"
                 "gemini-live-2.5-flash")
_INSTRUCTION = {"role": "user", "parts": [{"text": "You are terse."}]}

CLIENT_SHAPES: Tuple[ClientShape, ...] = (
    # --- setup ---------------------------------------------------------------------------
    ClientShape("setup_minimal", {"setup": {"model": _GEMINI_MODEL}}, "gemini"),
    ClientShape("setup_text_manual_vad", {"setup": {
        "model": _GEMINI_MODEL,
        "generationConfig": {"responseModalities": ["TEXT"]},
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}}, "gemini"),
    ClientShape("setup_tools", {"setup": {"model": _GEMINI_MODEL, "tools": [_WEATHER_TOOL]}},
                "gemini"),
    ClientShape("setup_vertex_transcription", {"setup": {
        "model": _VERTEX_MODEL,
        "generationConfig": {"responseModalities": ["AUDIO"]},
        "outputAudioTranscription": {}}}, "vertex",
        note="The official SDKs add responseModalities AUDIO on Vertex when none is given."),
    ClientShape("setup_audio_full", {"setup": {
        "model": "models/gemini-2.5-flash-native-audio-preview-12-2025",
        "generationConfig": {
            "responseModalities": ["AUDIO"],
            "temperature": 0.7,
            "mediaResolution": "MEDIA_RESOLUTION_LOW",
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}},
                             "languageCode": "en-US"},
            "thinkingConfig": {"thinkingBudget": 0},
            "enableAffectiveDialog": True},
        "systemInstruction": _INSTRUCTION,
        "tools": [_WEATHER_TOOL, {"googleSearch": {}}],
        "realtimeInputConfig": {
            "automaticActivityDetection": {
                "startOfSpeechSensitivity": "START_SENSITIVITY_LOW",
                "endOfSpeechSensitivity": "END_SENSITIVITY_LOW",
                "prefixPaddingMs": 20, "silenceDurationMs": 500},
            "activityHandling": "START_OF_ACTIVITY_INTERRUPTS",
            "turnCoverage": "TURN_INCLUDES_ONLY_ACTIVITY"},
        "sessionResumption": {},
        "contextWindowCompression": {"triggerTokens": 25600,
                                     "slidingWindow": {"targetTokens": 12800}},
        "inputAudioTranscription": {},
        "outputAudioTranscription": {},
        "proactivity": {"proactiveAudio": True}}}, "gemini"),
    ClientShape("setup_resume", {"setup": {"model": _GEMINI_MODEL,
                                           "sessionResumption": {"handle": HANDLE}}}, "gemini",
                note="A resume: the same model, the latest resumable handle."),
    ClientShape("setup_vertex_transparent", {"setup": {
        "model": _VERTEX_MODEL, "generationConfig": {"responseModalities": ["AUDIO"]},
        "sessionResumption": {"handle": HANDLE, "transparent": True}}}, "vertex",
        note="transparent is Vertex only; the Gemini API rejects it."),
    ClientShape("setup_history_config", {"setup": {
        "model": _GEMINI_MODEL,
        "historyConfig": {"initialHistoryInClientContent": True}}}, "gemini",
        note="History then comes as clientContent and does not trigger a reply."),
    ClientShape("setup_int64_strings", {"setup": {
        "model": _GEMINI_MODEL,
        "contextWindowCompression": {"triggerTokens": "25600",
                                     "slidingWindow": {"targetTokens": "12800"}}}}, "gemini",
        note="int64 fields may be strings in requests too."),
    ClientShape("setup_sdk_snake_nests", {"setup": {
        "model": _GEMINI_MODEL,
        "generationConfig": {
            "responseModalities": ["AUDIO"], "topK": 40.0,
            "speechConfig": {"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}},
            "thinkingConfig": {"thinking_budget": 0}},
        "realtimeInputConfig": {"automatic_activity_detection": {"disabled": False}},
        "contextWindowCompression": {"trigger_tokens": 1000},
        "proactivity": {"proactive_audio": True}}}, "gemini", camel=False,
        canonical="setup_sdk_snake_nests_camel",
        note="What google-genai sends: snake_case inside nests, topK as a float."),
    ClientShape("setup_sdk_snake_nests_camel", {"setup": {
        "model": _GEMINI_MODEL,
        "generationConfig": {
            "responseModalities": ["AUDIO"], "topK": 40.0,
            "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}},
            "thinkingConfig": {"thinkingBudget": 0}},
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": False}},
        "contextWindowCompression": {"triggerTokens": 1000},
        "proactivity": {"proactiveAudio": True}}}, "gemini"),
    ClientShape("setup_3x_fields", {"setup": {
        "model": _GEMINI_MODEL,
        "labels": {"team": "support"},
        "proactivity": {"proactiveAudio": True, "proactiveVideo": True},
        "realtimeInputConfig": {"interimTranscriptTimestampEnabled": True},
        "inputAudioTranscription": {"mode": "VERBATIM"}}}, "gemini",
        note="google-genai 3.x setup fields (labels is Gemini API only)."),
    # --- clientContent ---------------------------------------------------------------------
    ClientShape("client_content_turn", {"clientContent": {
        "turns": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "turnComplete": True}}),
    ClientShape("client_content_history", {"clientContent": {
        "turns": [{"role": "user", "parts": [{"text": "Capital of France?"}]},
                  {"role": "model", "parts": [{"text": "Paris"}]}],
        "turnComplete": False}}, note="Appended to the history; no reply yet."),
    ClientShape("client_content_turn_complete_only", {"clientContent": {"turnComplete": True}}),
    ClientShape("client_content_sdk_snake", {"client_content": {
        "turns": [{"role": "user", "parts": [{"text": "Hello there"}]}],
        "turn_complete": True}}, camel=False, canonical="client_content_turn",
        note="google-genai's top-level and nested snake_case keys."),
    # --- realtimeInput (one field per message) -----------------------------------------------
    ClientShape("realtime_audio", {"realtimeInput": {"audio": _blob("AQD//wIA")}}),
    ClientShape("realtime_audio_urlsafe", {"realtimeInput": {"audio": _blob("AQD__wIA")}},
                note="google-genai encodes bytes URL-safe; the server accepts it."),
    ClientShape("realtime_video", {"realtimeInput": {"video": _blob("/9j/4AA=", "image/jpeg")}},
                note="Video is a stream of image frames."),
    ClientShape("realtime_text", {"realtimeInput": {"text": "Are you there?"}}),
    ClientShape("realtime_activity_start", {"realtimeInput": {"activityStart": {}}},
                note="Only with automaticActivityDetection.disabled."),
    ClientShape("realtime_activity_end", {"realtimeInput": {"activityEnd": {}}}),
    ClientShape("realtime_audio_stream_end", {"realtimeInput": {"audioStreamEnd": True}}),
    ClientShape("realtime_media_chunks", {"realtimeInput": {"mediaChunks": [_blob("AQD//wIA")]}},
                deprecated=True,
                note="Older models accept it; 3.x models close with 1007. livesync never "
                     "sends it."),
    # --- toolResponse -------------------------------------------------------------------------
    ClientShape("tool_response", {"toolResponse": {"functionResponses": [
        {"id": CALL_ID, "name": "lookup", "response": {"result": "18C, cloudy"}}]}}),
    ClientShape("tool_response_without_id", {"toolResponse": {"functionResponses": [
        {"name": "get_status", "response": {"mood": "happy"}}]}}, "vertex",
        note="The Gemini API needs the id; Vertex accepted this in the recordings."),
    ClientShape("tool_response_non_blocking", {"toolResponse": {"functionResponses": [
        {"id": CALL_ID, "name": "lookup", "response": {"result": "partial"},
         "willContinue": True, "scheduling": "WHEN_IDLE"}]}}, "gemini",
        note="NON_BLOCKING functions; willContinue is rejected on Vertex by google-genai 3.x."),
    ClientShape("tool_response_sdk_snake", {"tool_response": {"function_responses": [
        {"id": CALL_ID, "name": "lookup", "response": {"result": "partial"},
         "will_continue": True, "scheduling": "WHEN_IDLE"}]}}, "gemini", camel=False,
        canonical="tool_response_non_blocking"),
    # --- contextUpdate (2026) -----------------------------------------------------------------
    ClientShape("context_update", {"contextUpdate": {
        "systemInstruction": {"role": "user", "parts": [{"text": "Answer in French."}]},
        "tools": {"tools": [_WEATHER_TOOL]}}},
        note="Replaces the instruction and the tools for later turns."),
    ClientShape("context_update_clear_tools", {"contextUpdate": {"tools": {"tools": []}}},
                note="An empty list removes every tool."),
    ClientShape("context_update_instruction", {"contextUpdate": {
        "systemInstruction": {"parts": [{"text": "Be brief."}]}}}),
)

_SERVER_BY_NAME = {shape.name: shape for shape in SERVER_SHAPES}
_CLIENT_BY_NAME = {shape.name: shape for shape in CLIENT_SHAPES}


def server_shape(name: str) -> ServerShape:
    """The server shape called ``name``."""
    return _SERVER_BY_NAME[name]


def client_shape(name: str) -> ClientShape:
    """The client shape called ``name``."""
    return _CLIENT_BY_NAME[name]
