"""The deterministic scripted model of the emulator.

Rules (documented in docs/emulator.md, "The scripted model"):

* Tool calls: when the setup declares ``tools[].functionDeclarations`` and the
  user text mentions a declared function, the model calls it (see
  :func:`match_tools` and :func:`fill_args`).
* Otherwise the reply text comes from :func:`reply_text`.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import uuid
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ._records import Turn
from ._wire import get

CANNED = (
    ("capital of france", "The capital of France is Paris."),
    ("capital of germany", "The capital of Germany is Berlin."),
    ("capital of japan", "The capital of Japan is Tokyo."),
    ("are you there", "Yes, I'm here! How can I help you today?"),
)
"""Canned replies: if the lower-cased user text contains the key, reply with the value."""

BACKGROUND_TEXT = "Background work finished."
"""What the model says in the background phase of ``interaction_status="background"``."""

EMPTY_REPLY = "Yeah, I can hear you. What's up?"

MAX_COUNT = 1000


def user_texts(history: List[Dict[str, Any]]) -> List[str]:
    """Return the text of each user turn in ``history``, oldest first."""
    texts: List[str] = []
    for content in history:
        if get(content, "role", "user") != "user":
            continue
        parts = get(content, "parts") or []
        pieces = [str(get(p, "text")) for p in parts if isinstance(get(p, "text"), str)]
        if pieces:
            texts.append(" ".join(pieces))
    return texts


def reply_text(turn: Turn) -> str:
    """Return the default reply to ``turn`` (first matching rule wins).

    1. Audio turns: ``"I heard 1.20 seconds of audio."``.
    2. Empty text: ``"Yeah, I can hear you. What's up?"``.
    3. ``"what did i say"`` / ``"what did i just say"``: ``"Earlier you said: <previous
       user text>"`` (or ``"You have not said anything before."``).
    4. ``"system instruction"``: ``"My system instruction is: <its text>"`` (or
       ``"I have no system instruction."``): shows ``contextUpdate`` and resumes.
    5. ``"count to N"`` (N <= 1000): ``"1, 2, ..., N."`` (handy for long replies).
    6. The :data:`CANNED` table (substring match, case-insensitive).
    7. Otherwise an echo: ``"You said: <text>"``.
    """
    if turn.kind == "audio":
        return f"I heard {turn.audio_seconds:.2f} seconds of audio."
    text = turn.text.strip()
    low = text.lower()
    if not text:
        return EMPTY_REPLY
    if "what did i say" in low or "what did i just say" in low:
        earlier = user_texts(turn.history)[:-1]
        earlier = [t for t in earlier if "what did i" not in t.lower()]
        if earlier:
            return f"Earlier you said: {earlier[-1]}"
        return "You have not said anything before."
    if "system instruction" in low:
        return instruction_reply(turn.config)
    match = re.search(r"count to (\d+)", low)
    if match:
        count = min(int(match.group(1)), MAX_COUNT)
        if count >= 1:
            return ", ".join(str(i) for i in range(1, count + 1)) + "."
    for key, answer in CANNED:
        if key in low:
            return answer
    return f"You said: {text}"


def instruction_reply(config: Dict[str, Any]) -> str:
    """Return the reply to "system instruction": the text parts of the current one."""
    instruction = get(config, "systemInstruction")
    if isinstance(instruction, str):
        text = instruction
    else:
        parts = get(instruction, "parts") or []
        text = " ".join(str(get(p, "text")) for p in parts if isinstance(get(p, "text"), str))
    if not text:
        return "I have no system instruction."
    return f"My system instruction is: {text}"


def declared_functions(config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Return the function declarations of a setup, in declaration order."""
    functions: List[Dict[str, Any]] = []
    for tool in get(config, "tools") or []:
        for decl in get(tool, "functionDeclarations") or []:
            if isinstance(decl, dict) and isinstance(decl.get("name"), str):
                functions.append(decl)
    return functions


def name_words(name: str) -> List[str]:
    """Split a function name on ``_`` and camelCase boundaries; keep words of >= 5 letters."""
    words: List[str] = []
    for piece in re.split(r"[_\W]+", name):
        words.extend(re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", piece))
    return [w.lower() for w in words if len(w) >= 5]


def mentions(text: str, name: str) -> bool:
    """Tell whether ``text`` mentions function ``name`` (see :func:`match_tools`)."""
    low = text.lower()
    if re.search(r"(?<![\w])" + re.escape(name.lower()) + r"(?![\w])", low):
        return True
    return any(re.search(r"\b" + re.escape(w) + r"\b", low) for w in name_words(name))


def match_tools(turn: Turn) -> List[Dict[str, Any]]:
    """Return the declared functions that ``turn.text`` mentions.

    A function is mentioned when the text contains its full name, or any word of
    its name of five or more letters (words split on ``_`` and camelCase), as a
    whole word, case-insensitively: ``get_current_weather`` matches "what's the
    *weather*" and "the *current* time".
    """
    if turn.kind == "audio" or not turn.text.strip():
        return []
    return [d for d in declared_functions(turn.config) if mentions(turn.text, d["name"])]


def _schema(decl: Dict[str, Any]) -> Dict[str, Any]:
    schema = get(decl, "parameters")
    if not isinstance(schema, dict):
        schema = get(decl, "parametersJsonSchema")
    return schema if isinstance(schema, dict) else {}


_SUBJECT = re.compile(r".*\b(?:in|for|of|about|at|to)\s+(.+)$", re.IGNORECASE | re.DOTALL)


def fill_args(decl: Dict[str, Any], text: str) -> Dict[str, Any]:
    """Fill a call's ``args`` deterministically from the user text.

    For each property of ``parameters`` (or ``parametersJsonSchema``):

    * ``enum``: the first enum value that appears in the text (case-insensitive),
      else the first enum value if the property is required, else omitted.
    * string: the words after the last ``in``/``for``/``of``/``about``/``at``/``to``
      (trailing punctuation stripped), else the whole text. Filled only if required.
    * integer/number: the first number in the text; if none, filled with 0 only if
      required.
    * boolean: true if the text contains "yes", "true" or "on", else false;
      filled only if required.
    * other types: ``{}``/``[]`` if required, else omitted.
    """
    schema = _schema(decl)
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    args: Dict[str, Any] = {}
    low = text.lower()
    if not isinstance(props, dict):
        return args
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = str(prop.get("type", "string")).lower()
        enum = prop.get("enum")
        if isinstance(enum, list) and enum:
            hit = [e for e in enum if str(e).lower() in low]
            if hit:
                args[name] = hit[0]
            elif name in required:
                args[name] = enum[0]
            continue
        if kind in ("integer", "number"):
            number = re.search(r"-?\d+(?:\.\d+)?", text)
            if number:
                value = float(number.group(0))
                args[name] = int(value) if kind == "integer" else value
            elif name in required:
                args[name] = 0
        elif name not in required:
            continue
        elif kind == "boolean":
            args[name] = bool(re.search(r"\b(yes|true|on)\b", low))
        elif kind == "object":
            args[name] = {}
        elif kind == "array":
            args[name] = []
        else:
            match = _SUBJECT.match(text)
            subject = match.group(1) if match else text
            args[name] = subject.strip().rstrip("?.!,;:").strip() or text.strip()
    return args


def new_call_id(backend: str) -> str:
    """Return a call id: ``function-call-<19 digits>`` (Gemini API) or a UUID (Vertex)."""
    if backend == "vertex":
        return str(uuid.uuid4())
    return "function-call-" + str(10**18 + secrets.randbelow(9 * 10**18))


def tool_reply(calls: List[Tuple[str, str]], responses: Dict[str, Any]) -> str:
    """Return the reply after tool calls: ``"<name> returned <json>"`` joined by ``"; "``."""
    pieces = []
    for call_id, name in calls:
        payload = json.dumps(responses.get(call_id, {}), sort_keys=True)
        pieces.append(f"{name} returned {payload}")
    return "; ".join(pieces)


def default_script(turn: Turn) -> Iterator[Dict[str, Any]]:
    """Yield the default model's server messages for ``turn`` (end of turn excluded).

    A ``toolCall`` message pauses the script: the emulator waits for the client's
    ``toolResponse`` for every call, stores the responses in
    ``turn.tool_responses`` and only then resumes the generator.
    """
    functions = match_tools(turn)
    if functions:
        calls = [(new_call_id(turn.backend), d["name"]) for d in functions]
        yield {
            "toolCall": {
                "functionCalls": [
                    {"id": cid, "name": name, "args": fill_args(decl, turn.text)}
                    for (cid, name), decl in zip(calls, functions)
                ]
            }
        }
        text = tool_reply(calls, turn.tool_responses)
    else:
        text = reply_text(turn)
    yield from turn.reply(text)


def tokens_for_text(text: str) -> int:
    """Deterministic token estimate: one token per 4 characters, rounded up."""
    return (len(text) + 3) // 4


def tokens_for_audio(seconds: float) -> int:
    """Audio tokens: 25 per second, rounded up (the published billing rate)."""
    return int(math.ceil(seconds * 25 - 1e-9)) if seconds > 0 else 0


def history_text(history: List[Dict[str, Any]]) -> str:
    """Concatenate every text part of ``history``."""
    out: List[str] = []
    for content in history:
        for part in get(content, "parts") or []:
            text = get(part, "text")
            if isinstance(text, str):
                out.append(text)
    return "".join(out)


def usage(
    *,
    backend: str,
    prompt_text: str,
    prompt_audio_seconds: float,
    response_text: str,
    response_audio_seconds: float,
) -> Dict[str, Any]:
    """Return a ``usageMetadata`` object (Vertex field names on Vertex; zeros omitted)."""
    prompt_details: List[Dict[str, Any]] = []
    p_text = tokens_for_text(prompt_text)
    p_audio = tokens_for_audio(prompt_audio_seconds)
    if p_text:
        prompt_details.append({"modality": "TEXT", "tokenCount": p_text})
    if p_audio:
        prompt_details.append({"modality": "AUDIO", "tokenCount": p_audio})
    response_details: List[Dict[str, Any]] = []
    r_audio = tokens_for_audio(response_audio_seconds)
    r_text = 0 if r_audio else tokens_for_text(response_text)
    if r_text:
        response_details.append({"modality": "TEXT", "tokenCount": r_text})
    if r_audio:
        response_details.append({"modality": "AUDIO", "tokenCount": r_audio})
    prompt = p_text + p_audio
    response = r_text + r_audio
    meta: Dict[str, Any] = {}
    count_key = "candidatesTokenCount" if backend == "vertex" else "responseTokenCount"
    details_key = "candidatesTokensDetails" if backend == "vertex" else "responseTokensDetails"
    if prompt:
        meta["promptTokenCount"] = prompt
    if response:
        meta[count_key] = response
    if prompt + response:
        meta["totalTokenCount"] = prompt + response
    if prompt_details:
        meta["promptTokensDetails"] = prompt_details
    if response_details:
        meta[details_key] = response_details
    if backend == "vertex":
        meta["trafficType"] = "ON_DEMAND"
    return meta


def optional_text(value: Any) -> Optional[str]:
    """Return ``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None
