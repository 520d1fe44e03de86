"""Language hints as the API takes them: ISO-639-1 codes (docs/protocol.md §2.2 [V] SDK
``AudioTranscription.language``: "Supplying the input language in ISO-639-1 (e.g. ``en``)
format").

A code in any case is lowered (``"EN"`` is ``"en"``) and a regional tag keeps its language
(``"en-US"`` is ``"en"``: the API refuses regional tags, [C] livekit/agents#6705). Anything else,
a language name (``"english"``) or an ISO-639-3 code (``"eng"``), is refused with a message that
gives the code to use; LiveKit's own :class:`~livekit.agents.LanguageCode` supplies the names.
"""

from __future__ import annotations

from collections.abc import Iterable

from livekit.agents import LanguageCode

ISO_639_1 = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv cy da
    de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy
    hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg
    li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or
    os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta
    te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """.split()
)
"""The two-letter codes of ISO 639-1."""


def normalize_language(value: str, *, option: str = "language") -> str:
    """``value`` as the ISO-639-1 code the API expects; ``ValueError`` naming ``option`` and
    the code to use when it is not a language code."""
    if not isinstance(value, str):
        raise ValueError(f"{option} must be an ISO-639-1 code such as 'en'; got {value!r}")
    code = value.strip().lower().replace("_", "-").split("-")[0]
    if code in ISO_639_1:
        return code
    suggestion = LanguageCode(value).language if value.strip() else ""
    if suggestion in ISO_639_1:
        raise ValueError(
            f"{option}={value!r} is not an ISO-639-1 language code: use {option}={suggestion!r}"
        )
    raise ValueError(
        f"{option}={value!r} is not an ISO-639-1 language code: pass a two-letter code such as "
        "'en', 'fr' or 'ja' (or None to let the model detect the language)"
    )


def normalize_languages(values: Iterable[str], *, option: str = "languages") -> tuple[str, ...]:
    """A non-empty list of language hints, each normalized, without repeats (first kept)."""
    if isinstance(values, str):
        raise ValueError(f"{option} must be a list of ISO-639-1 codes, e.g. ['en', 'fr']")
    codes: list[str] = []
    for value in values:
        code = normalize_language(value, option=f"{option} entry")
        if code not in codes:
            codes.append(code)
    if not codes:
        raise ValueError(
            f"{option} must name at least one language (the API refuses an empty list); "
            f"pass {option}=None to let the model detect the language"
        )
    return tuple(codes)
