"""The transcription session's configuration schema, and validation of ``session.update``.

:func:`apply_session_update` is the whole path of a ``session.update`` in a transcription session:
envelope and beta-shape checks, field names and JSON types (:func:`validate_shape`), the merge into
the effective config (:func:`merge`) and the per-model rules (:func:`validate_rules`). It raises
:class:`ApiError`, which the server session turns into an ``error`` event. Error wording follows
OpenAI's validator; sources are cited by ``docs/protocol.md`` section.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .rules import AUDIO_FORMATS, BETA_SHAPE_MESSAGE, DELAY_VALUES, INCLUDE_LOGPROBS, ModelRules

__all__ = [
    "SERVER_VAD_DEFAULTS",
    "ApiError",
    "Json",
    "apply_session_update",
    "check_keys",
    "invalid_enum",
    "invalid_type",
    "merge",
    "realtime_session_config",
    "transcription_session_config",
    "validate_rules",
    "validate_shape",
]

Json = dict[str, Any]
"""A JSON object, as parsed from or sent on the socket."""


@dataclass(eq=False)
class ApiError(Exception):
    """A validation failure, to be sent as an ``error`` event.

    With ``fatal`` set the socket is closed with 4000 ``"<type>.<code>"`` after the error
    (docs/protocol.md §1.7 [V]/[I]).
    """

    code: str | None
    message: str
    param: str | None = None
    type: str = "invalid_request_error"
    fatal: bool = False


# Beta (flat) session fields: their presence means a beta-shaped update (docs/protocol.md §2.4 [V]
# SDK types/beta/realtime/transcription_session_update.py; rejection docs/protocol.md §7 A.7 [O]).
_BETA_FLAT_FIELDS = (
    "input_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "client_secret",
    "modalities",
)

# Field names of the GA transcription session (docs/protocol.md §2.2 [V] SDK
# realtime_transcription_session_create_request.py and the types it references).
_SESSION_KEYS = ("type", "audio", "include")
_AUDIO_KEYS = ("input",)
_INPUT_KEYS = ("format", "noise_reduction", "transcription", "turn_detection")
_FORMAT_KEYS = ("type", "rate")
_NOISE_KEYS = ("type", "strength")
_TRANSCRIPTION_KEYS = ("model", "language", "languages", "keywords", "prompt", "delay")
_SERVER_VAD_KEYS = (
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "idle_timeout_ms",
    "create_response",
    "interrupt_response",
)
_SEMANTIC_VAD_KEYS = ("type", "eagerness", "create_response", "interrupt_response")

SERVER_VAD_DEFAULTS: Mapping[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
"""Server VAD defaults: threshold 0.5, prefix 300 ms, silence 500 ms (docs/protocol.md §2.2 [V]
SDK)."""

_SEMANTIC_VAD_DEFAULTS: Mapping[str, Any] = {"type": "semantic_vad", "eagerness": "auto"}

_TURN_DETECTION_PARAM = "session.audio.input.turn_detection"


# ---------------------------------------------------------------------------------------------
# Session objects sent in session.created
# ---------------------------------------------------------------------------------------------


def transcription_session_config(session_id: str, expires_at: int, model: str | None) -> Json:
    """The effective config of a new transcription session (sent in ``session.created``).

    The defaults are those of docs/protocol.md §7 B.17 [I] (server VAD on by default [V] guide);
    ``model`` is the transcription model taken from the URL in gateway mode, else None.
    """
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "type": "transcription",
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "noise_reduction": None,
                "transcription": {"model": model} if model else None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            }
        },
        "include": None,
    }


def realtime_session_config(session_id: str, expires_at: int, model: str) -> Json:
    """The session object of a conversation session (only its routing errors are emulated)."""
    return {
        "id": session_id,
        "object": "realtime.session",
        "type": "realtime",
        "model": model,
        "expires_at": expires_at,
        "output_modalities": ["audio"],
    }


# ---------------------------------------------------------------------------------------------
# JSON type and range checks, in OpenAI's wording
# ---------------------------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    """OpenAI's wording for a JSON value's type in ``invalid_type`` messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def invalid_type(path: str, expected: str, value: Any) -> ApiError:
    """An ``invalid_type`` error for ``value`` at ``path``, which should be ``expected``."""
    # Wording of OpenAI's invalid_type errors, e.g. "Invalid type for 'x': expected a decimal, but
    # got a string instead." [I] (the REST API's style; the realtime server shares its validator).
    return ApiError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_json_type(value)} instead.",
        path,
    )


def invalid_enum(path: str, value: Any, allowed: tuple[str, ...]) -> ApiError:
    """An ``invalid_value`` error for ``value`` at ``path``, listing the ``allowed`` values."""
    # OpenAI's enum wording: "Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'." [I]
    quoted = [f"'{a}'" for a in allowed]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return ApiError(
        "invalid_value", f"Invalid value: '{value}'. Supported values are: {listed}.", path
    )


def check_keys(obj: Json, allowed: tuple[str, ...], path: str) -> None:
    """Raise ``unknown_parameter`` for the first key of ``obj`` not in ``allowed``."""
    # "Unknown parameter: '<dotted.path>'." with param = the path, session stays open
    # (docs/protocol.md §7 B.16 [O] openai-realtime-api-beta#9).
    for key in obj:
        if key not in allowed:
            full = f"{path}.{key}" if path else key
            raise ApiError("unknown_parameter", f"Unknown parameter: '{full}'.", full)


def _need_object(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise invalid_type(path, "an object", value)
    return value


def _need_number(obj: Json, key: str, path: str, lo: float | None, hi: float | None) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_type(full, "a decimal", value)
    _check_range(full, value, lo, hi, "decimal")


def _need_int(obj: Json, key: str, path: str, lo: int | None) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(full, "an integer", value)
    _check_range(full, value, lo, None, "integer")


def _check_range(path: str, value: float, lo: float | None, hi: float | None, kind: str) -> None:
    # OpenAI's range wording, e.g. "integer below minimum value" (docs/protocol.md §2.2 [O] a
    # client saw this for a 16 kHz rate); the code is invalid_value as for other bad values [I].
    if lo is not None and value < lo:
        raise ApiError(
            "invalid_value",
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {lo:g}, "
            f"but got {value:g} instead.",
            path,
        )
    if hi is not None and value > hi:
        raise ApiError(
            "invalid_value",
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {hi:g}, "
            f"but got {value:g} instead.",
            path,
        )


def _need_bool(obj: Json, key: str, path: str) -> None:
    if key in obj and not isinstance(obj[key], bool):
        raise invalid_type(f"{path}.{key}", "a boolean", obj[key])


def _need_str(obj: Json, key: str, path: str, *, nullable: bool = True) -> None:
    if key not in obj:
        return
    value = obj[key]
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise invalid_type(f"{path}.{key}", "a string", value)


def _need_str_list(obj: Json, key: str, path: str) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    # `languages: null` is rejected (docs/protocol.md §7 B.14 [C] livekit-plugins-openai stt.py), so is any non-array.
    if not isinstance(value, list):
        raise invalid_type(full, "an array", value)
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise invalid_type(f"{full}[{i}]", "a string", entry)


# ---------------------------------------------------------------------------------------------
# session.update
# ---------------------------------------------------------------------------------------------


def apply_session_update(
    current: Json,
    event: Json,
    model_rules: Mapping[str, ModelRules],
    *,
    url_model: str | None = None,
    fatal_turn_detection: bool = False,
) -> Json:
    """Validate a ``session.update`` event against the effective config ``current``.

    Returns the new effective config (``current`` is not modified). ``url_model`` is a ``?model=``
    the upgrade URL carried on a transcription URL: it fails the update. With
    ``fatal_turn_detection`` a ``turn_detection`` refused by the model's rules closes the session.

    Raises:
        ApiError: the update is refused; the effective config stays ``current``.
    """
    check_keys(event, ("type", "event_id", "session"), "")
    if "session" not in event:
        raise ApiError(
            "missing_required_parameter", "Missing required parameter: 'session'.", "session"
        )
    sess = _need_object(event["session"], "session")

    # Beta flat fields (docs/protocol.md §7 A.7 [O]).
    if any(key in sess for key in _BETA_FLAT_FIELDS):
        raise ApiError("beta_api_shape_disabled", BETA_SHAPE_MESSAGE, fatal=True)

    stype = sess.get("type")
    if stype is None:
        # `type` is required (docs/protocol.md §2.2 [V] SDK); wording [I].
        raise ApiError(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            "session.type",
        )
    if stype == "realtime":
        # docs/protocol.md §7 A.6 [O]; code [I].
        raise ApiError(
            "invalid_parameter",
            "Passing a realtime session update to a transcription session is not allowed.",
            "session.type",
        )
    if stype != "transcription":
        raise invalid_enum("session.type", stype, ("realtime", "transcription"))

    if url_model is not None:
        # livekit/agents-js#1756 (docs/protocol.md §7 A.3 [V]): ?model= on a transcription URL fails the first
        # transcription update, naming the session.update model [I] (else the URL's).
        named = url_model
        audio = sess.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
            tr = audio["input"].get("transcription")
            if isinstance(tr, dict) and isinstance(tr.get("model"), str):
                named = tr["model"]
        raise ApiError(
            "invalid_model",
            f'Model "{named}" is not supported in transcription mode.',
            fatal=True,
        )

    validate_shape(sess, model_rules)
    new_config, td_explicit = merge(current, sess)
    try:
        validate_rules(new_config, td_explicit, model_rules)
    except ApiError as err:
        # Only the rules' refusal of turn_detection may close (docs/protocol.md §7 B.11 [I]); a
        # malformed turn_detection object, refused by the shape check above, never does.
        if err.param == _TURN_DETECTION_PARAM and fatal_turn_detection:
            err.fatal = True
        raise
    return new_config


def validate_shape(sess: Json, model_rules: Mapping[str, ModelRules]) -> None:
    """Field names and JSON types of a transcription session update (docs/protocol.md §2.2 [V])."""
    check_keys(sess, _SESSION_KEYS, "session")
    if "include" in sess and sess["include"] is not None:
        include = sess["include"]
        if not isinstance(include, list):
            raise invalid_type("session.include", "an array", include)
        for i, entry in enumerate(include):
            if entry != INCLUDE_LOGPROBS:
                raise invalid_enum(f"session.include[{i}]", entry, (INCLUDE_LOGPROBS,))
    if "audio" not in sess or sess["audio"] is None:
        return
    audio = _need_object(sess["audio"], "session.audio")
    check_keys(audio, _AUDIO_KEYS, "session.audio")
    if "input" not in audio or audio["input"] is None:
        return
    path = "session.audio.input"
    inp = _need_object(audio["input"], path)
    check_keys(inp, _INPUT_KEYS, path)

    if inp.get("format") is not None:
        fpath = f"{path}.format"
        fmt = _need_object(inp["format"], fpath)
        check_keys(fmt, _FORMAT_KEYS, fpath)
        ftype = fmt.get("type", "audio/pcm")
        if ftype not in AUDIO_FORMATS:
            raise invalid_enum(f"{fpath}.type", ftype, tuple(AUDIO_FORMATS))
        if ftype != "audio/pcm" and "rate" in fmt:
            # G.711 formats have no rate field (docs/protocol.md §7 B.15 [V] SDK) [I].
            raise ApiError(
                "unknown_parameter", f"Unknown parameter: '{fpath}.rate'.", f"{fpath}.rate"
            )
        if "rate" in fmt:
            # Only 24 kHz (docs/protocol.md §7 B.15 [V] SDK; [O] "integer below minimum value").
            _need_int(fmt, "rate", fpath, None)
            _check_range(f"{fpath}.rate", fmt["rate"], 24000, 24000, "integer")

    if inp.get("noise_reduction") is not None:
        npath = f"{path}.noise_reduction"
        nr = _need_object(inp["noise_reduction"], npath)
        check_keys(nr, _NOISE_KEYS, npath)
        if "type" in nr and nr["type"] not in ("near_field", "far_field"):
            raise invalid_enum(f"{npath}.type", nr["type"], ("near_field", "far_field"))
        _need_number(nr, "strength", npath, 0.0, 1.0)

    if inp.get("transcription") is not None:
        _validate_transcription_shape(inp["transcription"], f"{path}.transcription", model_rules)

    if inp.get("turn_detection") is not None:
        _validate_turn_detection_shape(inp["turn_detection"], f"{path}.turn_detection")


def _validate_transcription_shape(
    value: Any, tpath: str, model_rules: Mapping[str, ModelRules]
) -> None:
    tr = _need_object(value, tpath)
    check_keys(tr, _TRANSCRIPTION_KEYS, tpath)
    for key in ("model", "language", "prompt", "delay"):
        _need_str(tr, key, tpath)
    for key in ("languages", "keywords"):
        _need_str_list(tr, key, tpath)
    if tr.get("languages") == []:
        # `languages: []` is rejected (docs/protocol.md §7 B.14 [C] livekit-plugins-openai stt.py); OpenAI's empty
        # array wording and code [I].
        raise ApiError(
            "empty_array",
            f"Invalid '{tpath}.languages': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.",
            f"{tpath}.languages",
        )
    if tr.get("delay") is not None and tr["delay"] not in DELAY_VALUES:
        # docs/protocol.md §7 B.13 [V] SDK.
        raise invalid_enum(f"{tpath}.delay", tr["delay"], DELAY_VALUES)
    model = tr.get("model")
    if model is not None and model not in model_rules:
        # Unknown model (docs/protocol.md §7 B [I]): invalid_value on the model param.
        raise invalid_enum(f"{tpath}.model", model, tuple(model_rules))


def _validate_turn_detection_shape(value: Any, dpath: str) -> None:
    td = _need_object(value, dpath)
    if "type" not in td:
        raise ApiError(
            "missing_required_parameter",
            f"Missing required parameter: '{dpath}.type'.",
            f"{dpath}.type",
        )
    if td["type"] == "server_vad":
        check_keys(td, _SERVER_VAD_KEYS, dpath)
        _need_number(td, "threshold", dpath, 0.0, 1.0)
        for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
            _need_int(td, key, dpath, 0)
    elif td["type"] == "semantic_vad":
        check_keys(td, _SEMANTIC_VAD_KEYS, dpath)
        if "eagerness" in td and td["eagerness"] not in ("low", "medium", "high", "auto"):
            raise invalid_enum(
                f"{dpath}.eagerness", td["eagerness"], ("low", "medium", "high", "auto")
            )
    else:
        raise invalid_enum(f"{dpath}.type", td["type"], ("server_vad", "semantic_vad"))
    for key in ("create_response", "interrupt_response"):
        _need_bool(td, key, dpath)


def merge(current: Json, sess: Json) -> tuple[Json, bool]:
    """Apply an update to the effective config: only the fields present change.

    ``null`` clears ``turn_detection``, ``noise_reduction`` and ``transcription``
    (docs/protocol.md §7 B.10 [V] SDK). Inside ``transcription`` and ``noise_reduction`` the
    fields merge too (a language can be set but not cleared, docs/protocol.md §2.2 [C] livekit-plugins-openai stt.py; an
    omitted ``strength`` keeps the current one, [V] SDK). Returns the new config and whether the
    update carried ``turn_detection`` explicitly. ``sess`` must have passed
    :func:`validate_shape`.
    """
    config = copy.deepcopy(current)
    if "include" in sess:
        config["include"] = list(sess["include"]) if sess["include"] is not None else None
    audio = sess.get("audio")
    inp = audio.get("input") if isinstance(audio, dict) else None
    if not isinstance(inp, dict):
        return config, False
    cur = config["audio"]["input"]

    if "format" in inp and inp["format"] is not None:
        ftype = inp["format"].get("type", "audio/pcm")
        cur["format"] = {"type": ftype, "rate": 24000} if ftype == "audio/pcm" else {"type": ftype}

    if "noise_reduction" in inp:
        nr = inp["noise_reduction"]
        if nr is None:
            cur["noise_reduction"] = None
        else:
            # strength defaults to 1 when first enabled (docs/protocol.md §2.2 [V] SDK); type
            # defaults to near_field [I].
            base = cur["noise_reduction"] or {"type": "near_field", "strength": 1.0}
            merged = dict(base)
            merged.update({k: v for k, v in nr.items() if v is not None})
            cur["noise_reduction"] = merged

    if "transcription" in inp:
        tr = inp["transcription"]
        if tr is None:
            cur["transcription"] = None
        else:
            merged = dict(cur["transcription"] or {})
            # A null sub-field leaves the current value [I] (livekit-plugins-openai stt.py: a language can never be
            # cleared); languages/keywords nulls were rejected by the shape check.
            merged.update({k: v for k, v in tr.items() if v is not None})
            cur["transcription"] = merged

    td_explicit = "turn_detection" in inp
    if td_explicit:
        td = inp["turn_detection"]
        if td is None:
            cur["turn_detection"] = None
        else:
            current_td = cur["turn_detection"]
            if current_td is not None and current_td.get("type") == td["type"]:
                merged = dict(current_td)
            else:
                merged = dict(
                    SERVER_VAD_DEFAULTS if td["type"] == "server_vad" else _SEMANTIC_VAD_DEFAULTS
                )
            merged.update({k: v for k, v in td.items() if v is not None})
            cur["turn_detection"] = merged
    return config, td_explicit


def validate_rules(config: Json, td_explicit: bool, model_rules: Mapping[str, ModelRules]) -> None:
    """Per-model rules on the merged config (docs/protocol.md §7 B.11-B.14, B.44-B.46).

    May switch off an inherited default ``turn_detection`` in ``config`` for a model without VAD.
    """
    inp = config["audio"]["input"]
    tr = inp["transcription"]
    if tr is None:
        return
    tpath = "session.audio.input.transcription"
    model = tr.get("model")
    if model is None:
        # The model is required once transcription is on [I] (no server default is known).
        raise ApiError(
            "missing_required_parameter",
            f"Missing required parameter: '{tpath}.model'.",
            f"{tpath}.model",
        )
    rules = model_rules.get(model)
    if rules is None:
        raise invalid_enum(f"{tpath}.model", model, tuple(model_rules))
    if not rules.realtime:
        # docs/protocol.md §7 B.44: not available over the Realtime API [O]; wording [I].
        raise ApiError(
            "invalid_value",
            f'Model "{model}" is not supported in realtime transcription sessions.',
            f"{tpath}.model",
        )
    td = inp["turn_detection"]
    if td is not None and rules.turn_detection and td["type"] not in rules.turn_detection:
        # docs/protocol.md §7 B.45: a VAD type the model has no source for [I]; wording [I].
        raise ApiError(
            "invalid_value",
            f"Turn detection type '{td['type']}' is not supported for this transcription model.",
            f"{_TURN_DETECTION_PARAM}.type",
        )
    if not rules.turn_detection and td is not None:
        if td_explicit:
            # docs/protocol.md §7 B.11: verbatim message and param [O] (several repos,
            # livekit/agents#5779).
            raise ApiError(
                "invalid_value",
                "Turn detection is not supported for this transcription model.",
                _TURN_DETECTION_PARAM,
            )
        # Inherited default VAD: the server turns it off, since clients that omit turn_detection
        # for gpt-realtime-whisper work (docs/protocol.md §2.3, livekit/agents#5779 [C]) [I].
        inp["turn_detection"] = None
    if not rules.singular_language and tr.get("language") is not None:
        # docs/protocol.md §7 B.46: the models that take `languages` refuse `language` [C][O]
        # livekit/agents#6613; code and wording [I].
        raise ApiError(
            "invalid_value",
            "The 'language' parameter is not supported for this transcription model. "
            "Use 'languages' instead.",
            f"{tpath}.language",
        )
    if not rules.prompt and tr.get("prompt") is not None:
        # docs/protocol.md §7 B.12 [V] OpenAI API reference / [O]; wording [I].
        raise ApiError(
            "invalid_value",
            "Prompt is not supported for this transcription model.",
            f"{tpath}.prompt",
        )
    if not rules.delay and tr.get("delay") is not None:
        # docs/protocol.md §7 B.13 [V] SDK ("Only supported with gpt-realtime-whisper");
        # wording [I].
        raise ApiError(
            "invalid_value",
            "Delay is not supported for this transcription model.",
            f"{tpath}.delay",
        )
    if not rules.keywords_languages:
        # docs/protocol.md §7 B.14 [V] SDK ("Supported by gpt-transcribe and
        # gpt-live-transcribe") and [O]; wording [I].
        if tr.get("keywords") is not None:
            raise ApiError(
                "invalid_value",
                "Keywords are not supported for this transcription model.",
                f"{tpath}.keywords",
            )
        languages = tr.get("languages")
        if isinstance(languages, list) and len(languages) > 1:
            raise ApiError(
                "invalid_value",
                "Multiple languages are not supported for this transcription model.",
                f"{tpath}.languages",
            )
