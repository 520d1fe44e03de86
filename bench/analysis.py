"""Analysis: the raw records of each run -> per-run figures -> per-cell medians -> verdicts.

A run's raw records are the client's result (``client.py``: CPU, memory, wire, every stream's
event times) and the emulator's record of it (``emulator_server.py`` ``/dump``: when it sent
each delta and ``completed``, when it read each commit, each committed item's audio CRC and
transcript). :func:`analyze` turns them into one run's figures, :func:`aggregate` the runs of a
(mode, N) cell into medians, :func:`verdicts` the cells into one line per target.

Rows are declared once: a per-run figure in :data:`FIGURES` (the cells get its median), a
latency in :data:`LATENCIES` (samples per stream; p50/p95/max per run, medians per cell). The
table (``report.py``) prints them by name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stats import (
    NAN,
    is_nan,
    marginal as marginal_growth,
    maximum,
    median,
    net_ratio,
    per_stream_second,
    ratio,
    summary,
)

PLUGINS = ("ours/flush", "ours/vad", "incumbent")
"""The compared clients: ours in the AgentSession configuration and with a VAD, the incumbent."""
VARIANTS = ("ours/pcmu", "ours/cold", "ours/warm")
"""Ours in the AgentSession configuration, measured for rows of their own: G.711 on the wire
(set beside ours/flush), and a stream opened as its audio starts without and with
``STT.prewarm()`` (against an emulator with a realistic handshake and completion delay)."""
REFERENCES = ("vad alone", "harness", "incumbent/novad")
"""Reference clients (one run per cell, except the VAD alone): what the plugins' figures
contain besides the plugins."""
TRANSLATION = ("ours/translate", "ours/interpret")
"""Translation streams (``TranslationSTT``, flush-driven): text only, and text plus translated
speech. Measured on rows of their own, in real time at :data:`TRANSLATION_NS`."""
TRANSLATION_NS = (1, 100)
TRANSLATION_FRAME = 9600
"""Translation sessions consume 200 ms frames; segments are cut at frame boundaries."""
TRANSLATION_LANGUAGE = "es"
"""The target language of the translation streams (``client.TARGET_LANGUAGE``)."""
ALL_CLIENTS = (*PLUGINS, *VARIANTS, *REFERENCES, *TRANSLATION)
FLUSH_CONFIGS = ("session", "pcmu", "cold", "warm")
"""Our STT configurations that commit on ``flush()`` (``client.FLUSH_CONFIGS``)."""
BEHIND_SECONDS = 1.0
"""A real-time stream is behind if a final comes later than this after the end of speech."""
TARGETS = {
    "cpu_session": 0.25,
    "cpu_vad": 0.5,
    "delta_interim_p95_ms": 2.0,
    "completed_final_p95_ms": 2.0,
    "eos_commit_p95_ms": 5.0,
    "idle_kib": 256.0,
}


@dataclass
class Audio:
    """The recording as the checker needs it."""

    pcm: bytes
    frame_bytes: int
    frame_s: float
    flush_frames: list[int]


# ----------------------------------------------------------------------------------------------
# per-run figures


@dataclass(frozen=True)
class Run:
    """One run's raw records."""

    result: dict[str, Any]
    """The client's result file."""
    dump: dict[str, Any]
    """The emulator's record (no sessions for the clients that open no socket)."""

    @property
    def n(self) -> int:
        """Streams in the run."""
        return int(self.result["spec"]["n"])

    @property
    def seconds(self) -> float:
        """Audio seconds each stream was fed."""
        return float(self.result["audio_seconds"])

    def per_stream_kib(self, rss_key: str) -> float:
        """RSS growth from the run's baseline to ``rss_key``, KiB per stream."""
        return float(self.result[rss_key] - self.result["rss_base"]) / self.n / 1024


@dataclass(frozen=True)
class Figure:
    """A per-run figure, computed from the run's raw records."""

    of: Callable[[Run], Any]
    median: bool = True
    """Whether the cells hold its median over the runs (else only the runs have it)."""


FIGURES: dict[str, Figure] = {
    "cpu_per_audio_s": Figure(lambda r: per_stream_second(r.result["cpu"], r.n, r.seconds)),
    "load": Figure(lambda r: ratio(r.result["cpu"], r.result["wall"])),
    "wall": Figure(lambda r: r.result["wall"]),
    "connect_s": Figure(lambda r: r.result["connect_seconds"]),
    "idle_kib": Figure(lambda r: r.per_stream_kib("rss_idle")),
    "peak_kib": Figure(lambda r: r.per_stream_kib("peak_rss")),
    "wire_sent": Figure(lambda r: per_stream_second(r.result["wire"]["sent"], r.n, r.seconds)),
    "wire_recv": Figure(lambda r: per_stream_second(r.result["wire"]["received"], r.n, r.seconds)),
    "wire_sockets": Figure(lambda r: r.result["wire"]["sockets"], median=False),
    "feed_lag_max": Figure(lambda r: r.result["feed_lag_max"]),
    "feed_lag_p95": Figure(lambda r: r.result["feed_lag_p95"]),
    "timed_out": Figure(lambda r: r.result["timed_out"], median=False),  # cells: runs that did
    "emulator_cpu": Figure(lambda r: r.dump.get("emulator_cpu", 0.0)),
    "user_s": Figure(lambda r: r.result["user"], median=False),
    "sys_s": Figure(lambda r: r.result["sys"], median=False),
    "minflt": Figure(lambda r: r.result["minflt"], median=False),
    "ctxsw": Figure(lambda r: r.result["ctxsw"], median=False),
    "gc": Figure(lambda r: r.result["gc"], median=False),
    "steal": Figure(lambda r: r.result.get("steal", 0.0)),
}
"""name: figure. To add one: an entry here (from fields the client or the emulator record),
then a row in ``report.py``."""


# ----------------------------------------------------------------------------------------------
# latencies: the client's event times matched against the emulator's


@dataclass
class StreamView:
    """One stream's client-side record with the emulator sessions it used."""

    stream: dict[str, Any]
    """``client.StreamRecord.to_json()``: t0, eos, commits, interims, finals, error, done."""
    sessions: list[dict[str, Any]]
    """The emulator's records of the sessions the stream's events came from, by session id
    (one, unless the stream reconnected)."""
    finals: dict[str, list[tuple[float, str]]]
    """item id -> (time, text) of each FINAL the stream got for it."""
    mode: str
    audio: Audio
    counts: dict[str, int]
    """The run's check counters: a latency that finds no sample where one was due counts it."""


def _delta_interim(v: StreamView) -> list[float]:
    """Emulator sent a delta -> the first INTERIM (or PREFLIGHT: a delta that arrives after the
    item's commit updates the PREFLIGHT) showing its text; the FINAL, when none ever does (the
    incumbent's 0.5 s throttle)."""
    out: list[float] = []
    interims: dict[str, list[tuple[float, int]]] = {}
    shown = sorted(v.stream["interims"] + v.stream.get("preflights", []))
    for t, item, length in shown:
        interims.setdefault(item, []).append((t, length))
    for s in v.sessions:
        cum: dict[str, int] = {}
        pos: dict[str, int] = {}
        for t_s, item, length in s["deltas"]:
            cum[item] = cum.get(item, 0) + length
            v.counts["deltas"] += 1
            seen = interims.get(item, [])
            j = pos.get(item, 0)
            while j < len(seen) and seen[j][1] < cum[item]:
                j += 1
            pos[item] = j
            if j < len(seen):
                out.append(seen[j][0] - t_s)
            else:
                v.counts["deltas_not_in_interim"] += 1
                if item in v.finals:
                    out.append(v.finals[item][0][0] - t_s)
    return out


def _completed_final(v: StreamView) -> list[float]:
    """Emulator sent ``completed`` -> the FINAL, for each item whose one FINAL is right."""
    out: list[float] = []
    for s in v.sessions:
        for it in s["items"]:
            got = v.finals.get(it["item_id"], [])
            right = it["transcript"] and len(got) == 1 and got[0][1] == it["transcript"]
            if right and it["item_id"] in s["completed"]:
                out.append(got[0][0] - s["completed"][it["item_id"]])
    return out


def _first_after(times: list[float], start: float, within: float = 5.0) -> float | None:
    later = [x for x in times if x >= start]
    return later[0] - start if later and later[0] - start < within else None


def _eos_commit(v: StreamView) -> list[float]:
    """End of speech (``flush()``, or the VAD's END_OF_SPEECH as the plugin reads it) -> the
    commit written to the socket; counted once per session the stream used."""
    out: list[float] = []
    for _ in v.sessions:
        for e in v.stream["eos"]:
            dt = _first_after(v.stream["commits"], e)
            if dt is None:
                v.counts["eos_without_commit"] += 1
            else:
                out.append(dt)
    return out


def _eos_server(v: StreamView) -> list[float]:
    """End of speech -> the commit read by the emulator."""
    out: list[float] = []
    for s in v.sessions:
        for e in v.stream["eos"]:
            dt = _first_after(s["commits_in"], e)
            if dt is not None:
                out.append(dt)
    return out


def _eos_final(v: StreamView) -> list[float]:
    """Real time, end to end: speech end + 250 ms (where a session VAD ends speech) -> the
    FINAL, in order."""
    if v.mode != "realtime":
        return []
    ends = [v.stream["t0"] + (f + 1) * v.audio.frame_s for f in v.audio.flush_frames]
    ordered = sorted(t for t, _, _ in v.stream["finals"])
    return [t - e for t, e in zip(ordered, ends, strict=False)]


def _flushed_items(v: StreamView) -> list[tuple[float, str]]:
    """(flush time, item id) of each item a flush committed, in order (flush configurations:
    the k-th flush commits the k-th item)."""
    items = [it["item_id"] for s in v.sessions for it in s["items"]]
    return list(zip(v.stream["eos"], items, strict=False))


def _commit_preflight(v: StreamView) -> list[float]:
    """The flush (the commit) -> the item's first PREFLIGHT: the head start preemptive
    generation gets."""
    first: dict[str, float] = {}
    for t, item, _ in v.stream.get("preflights", []):
        first.setdefault(item, t)
    return [first[item] - t for t, item in _flushed_items(v) if item in first]


def _commit_final(v: StreamView) -> list[float]:
    """The flush (the commit) -> the item's FINAL."""
    return [v.finals[item][0][0] - t for t, item in _flushed_items(v) if item in v.finals]


def _start_ready(v: StreamView) -> list[float]:
    """The stream opened -> its session live (late-open configurations; 0 when it took over
    a session that was ready)."""
    started, ready = v.stream.get("started"), v.stream.get("ready")
    return [] if started is None or ready is None else [max(0.0, ready - started)]


def _first_interim(v: StreamView) -> list[float]:
    """The first frame pushed -> the first INTERIM (late-open configurations)."""
    first = v.stream.get("first_audio")
    if v.stream.get("started") is None or first is None or not v.stream["interims"]:
        return []
    return [v.stream["interims"][0][0] - first]


LATENCIES: dict[str, Callable[[StreamView], list[float]]] = {
    "delta_interim": _delta_interim,
    "completed_final": _completed_final,
    "eos_commit": _eos_commit,
    "eos_server": _eos_server,
    "eos_final": _eos_final,
    "commit_preflight": _commit_preflight,
    "commit_final": _commit_final,
    "start_ready": _start_ready,
    "first_interim": _first_interim,
}
"""name: samples (seconds) of one stream. To add one: a function of the :class:`StreamView`
here, then a row in ``report.py``."""


# ----------------------------------------------------------------------------------------------
# one run


def _check_items(v: StreamView, flushing: bool, pcm16: bool = True) -> bool:
    """Every committed item's audio is the next slice of what the stream sent (CRC), its
    boundaries are the flushes (``flushing``), and exactly one FINAL with exactly the server's
    transcript reached the client. Counts into ``v.counts``; False if any check failed. G.711
    items (not ``pcm16``) are the stream's resampled, encoded audio: only the finals are
    checked (the tests prove their bytes)."""
    ok = True
    c = v.counts
    audio = v.audio
    offset = 0
    for s in v.sessions:
        for k, it in enumerate(s["items"]):
            c["items"] += 1
            chunk = audio.pcm[offset : offset + it["len"]]
            if pcm16 and (len(chunk) != it["len"] or zlib.crc32(chunk) != it["crc"]):
                c["audio_mismatch"] += 1
                ok = False
            offset += it["len"]
            if pcm16 and flushing and k < len(audio.flush_frames):
                if offset != (audio.flush_frames[k] + 1) * audio.frame_bytes:
                    c["boundary_mismatch"] += 1
                    ok = False
            got = v.finals.get(it["item_id"], [])
            if it["transcript"] and len(got) == 1 and got[0][1] == it["transcript"]:
                c["finals_ok"] += 1
            elif it["transcript"] or got:
                c["items_without_final"] += not got
                ok = False
    return ok


def _check_translation(st: dict[str, Any], audio: Audio, c: dict[str, int]) -> bool:
    """A translation stream's finals, one per flush, in order, are the emulator's translation
    of exactly the audio of their segment (cut at the frame boundary before each flush), and
    the interpreter read as much translated speech as the segments hold. Counts into ``c``."""
    from livekit.plugins.openai_rt.testing import expected_translation

    cuts = [0]
    for f in audio.flush_frames:
        end = (f + 1) * audio.frame_bytes
        cuts.append(end - end % TRANSLATION_FRAME)
    texts = [text for _, _, text in st["finals"]]
    ok = len(texts) == len(cuts) - 1
    for k, (a, b) in enumerate(zip(cuts, cuts[1:], strict=False)):
        c["items"] += 1
        if k < len(texts) and texts[k] == expected_translation(
            audio.pcm[a:b], TRANSLATION_LANGUAGE
        ):
            c["finals_ok"] += 1
        else:
            c["items_without_final"] += k >= len(texts)
            ok = False
    if st["speech_bytes"] and st["speech_bytes"] < cuts[-1]:
        c["audio_mismatch"] += 1
        ok = False
    return ok


def analyze(result: dict[str, Any], dump: dict[str, Any] | None, audio: Audio) -> dict[str, Any]:
    """One run's figures (:data:`FIGURES`), latency summaries (:data:`LATENCIES`), check
    counters and a few error messages, from the client's result and the emulator's dump."""
    spec = result["spec"]
    n = spec["n"]
    flushing = spec["plugin"] == "ours" and spec["config"] in FLUSH_CONFIGS
    pcm16 = spec["config"] != "pcmu"
    translating = spec["config"] in ("translate", "interpret")
    if spec["plugin"] in ("vad", "null") or dump is None:
        dump = {"sessions": {}}
        result = {**result, "streams": []}
    run = Run(result, dump)
    out: dict[str, Any] = {"n": n, **{name: f.of(run) for name, f in FIGURES.items()}}

    # items committed after the measured window come from the teardown (ours commits the
    # rest of the audio when its input closes): not part of the run
    t_end = result["t_end"]
    sessions: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for sid, s in dump["sessions"].items():
        items = [it for it in s["items"] if s["committed"].get(it["item_id"], 1e18) <= t_end]
        sessions[sid] = {**s, "items": items}
        for it in items:
            owner[it["item_id"]] = sid
        for d in s["deltas"]:
            owner.setdefault(d[1], sid)

    lat: dict[str, list[float]] = {name: [] for name in LATENCIES}
    c = {
        "finals": 0,
        "finals_ok": 0,
        "items": 0,
        "items_without_final": 0,
        "audio_mismatch": 0,
        "boundary_mismatch": 0,
        "streams_ok": 0,
        "behind": 0,
        "errors": 0,
        "deltas": 0,
        "deltas_not_in_interim": 0,
        "eos_without_commit": 0,
        "multi_session": 0,
    }
    error_samples: list[str] = []
    for st in result["streams"]:
        finals = st["finals"]
        sids = {owner[i] for _, i, _ in finals if i in owner}
        sids |= {owner[i] for _, i, _ in st["interims"] if i in owner}
        ok = st["error"] is None and st["done"]
        if st["error"] is not None:
            c["errors"] += 1
            if len(error_samples) < 3:
                error_samples.append(st["error"])
        if len(sids) != 1 and not translating:  # translation events name no server item
            c["multi_session"] += len(sids) != 0
            ok = False
        final_by_item: dict[str, list[tuple[float, str]]] = {}
        for t, item, text in finals:
            final_by_item.setdefault(item, []).append((t, text))
        c["finals"] += len(finals)
        view = StreamView(
            stream=st,
            sessions=[sessions[sid] for sid in sorted(sids)],
            finals=final_by_item,
            mode=spec["mode"],
            audio=audio,
            counts=c,
        )
        if translating:
            ok = _check_translation(st, audio, c) and ok
        else:
            ok = _check_items(view, flushing, pcm16) and ok
        samples = {name: fn(view) for name, fn in LATENCIES.items()}
        for name, values in samples.items():
            lat[name].extend(values)
        committed = sum(len(s["items"]) for s in view.sessions)
        if flushing:
            ok = ok and committed == len(audio.flush_frames)
        elif spec["mode"] == "realtime" and not translating:
            ok = ok and committed == spec["segments"]
        ok = ok and (translating or len(finals) == committed)
        if spec["mode"] == "realtime":
            e2e = samples["eos_final"]  # one per utterance that got its FINAL
            late = maximum(e2e, empty=0.0) > BEHIND_SECONDS
            if not ok or len(e2e) < len(audio.flush_frames) or late:
                c["behind"] += 1
        c["streams_ok"] += ok
    out["lat"] = {name: summary(v) for name, v in lat.items()}
    out["check"] = c
    out["error_samples"] = error_samples
    return out


def idle_figures(result: dict[str, Any]) -> dict[str, float]:
    """The idle run under tracemalloc: traced KiB per connected stream."""
    return {"traced_kib": result["traced_idle"] / result["spec"]["n"] / 1024}


# ----------------------------------------------------------------------------------------------
# cells


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell: medians of the per-run figures; per latency the median over the runs of each
    run's p50 and p95, the largest max and the sample count; check counters summed."""
    agg: dict[str, Any] = {"runs": len(runs)}
    for name, f in FIGURES.items():
        if f.median:
            agg[name] = median(r[name] for r in runs if name in r)
    agg["cpu_runs"] = [r["cpu_per_audio_s"] for r in runs]
    lat: dict[str, dict[str, float]] = {}
    for name in LATENCIES:
        per = [r["lat"][name] for r in runs if r["lat"][name]["n"]]
        lat[name] = {
            "n": sum(p["n"] for p in per),
            "p50_ms": median(p["p50"] for p in per) * 1000,
            "p95_ms": median(p["p95"] for p in per) * 1000,
            "max_ms": maximum(p["max"] for p in per) * 1000,
        }
    agg["lat"] = lat
    check: dict[str, int] = {}
    for r in runs:
        for k, v in r["check"].items():
            check[k] = check.get(k, 0) + v
    agg["check"] = check
    agg["streams"] = sum(r["n"] for r in runs)
    agg["timed_out"] = sum(bool(r["timed_out"]) for r in runs)
    agg["error_samples"] = [e for r in runs for e in r["error_samples"]][:3]
    return agg


def summarize(
    meta: dict[str, Any],
    order: list[str],
    runs: dict[str, dict[str, list[dict[str, Any]]]],
    idle: dict[str, dict[str, float]],
) -> dict[str, Any]:
    """The results file: ``meta``, the cells in ``order`` (``"mode:N"``), the idle figures,
    every run's figures and the verdicts."""
    results: dict[str, Any] = {
        "meta": meta,
        "order": order,
        "cells": {k: {c: aggregate(v) for c, v in row.items()} for k, row in runs.items()},
        "idle": idle,
        "runs": runs,
    }
    results["verdicts"] = verdicts(results)
    return results


def cell_n(key: str) -> int:
    """N of a ``"mode:N"`` cell key."""
    return int(key.split(":")[1])


def marginal(results: dict[str, Any], what: str) -> dict[tuple[int, int], dict[str, float]]:
    """Per-stream memory as the growth between consecutive real-time N >= 10 (the fixed,
    once-per-process part cancels out)."""
    cells = results["cells"]
    ns = sorted(
        cell_n(k) for k in results["order"] if k.startswith("realtime:") and cell_n(k) >= 10
    )
    out: dict[tuple[int, int], dict[str, float]] = {}
    for n0, n1 in zip(ns, ns[1:], strict=False):
        vals: dict[str, float] = {}
        for c in ALL_CLIENTS:
            a = cells[f"realtime:{n0}"].get(c, {}).get(what)
            b = cells[f"realtime:{n1}"].get(c, {}).get(what)
            vals[c] = NAN if a is None or b is None else marginal_growth(a, n0, b, n1)
        out[(n0, n1)] = vals
    return out


# ----------------------------------------------------------------------------------------------
# verdicts


def _cpu_verdicts(results: dict[str, Any]) -> list[str]:
    cells = results["cells"]
    out: list[str] = []
    for client, target, label in (
        ("ours/flush", TARGETS["cpu_session"], "CPU, AgentSession config"),
        ("ours/vad", TARGETS["cpu_vad"], "CPU, same VAD"),
    ):
        met: list[str] = []
        missed: list[str] = []
        overloaded: list[str] = []
        for key in results["order"]:
            row = cells[key]
            if client not in row or "incumbent" not in row:
                continue
            mine = row[client]["cpu_per_audio_s"]
            theirs = row["incumbent"]["cpu_per_audio_s"]
            r = ratio(mine, theirs)
            text = f"{key} {r:.2f}x"
            if row["incumbent"]["timed_out"] or row[client]["timed_out"]:
                overloaded.append(text)
            elif r <= target:
                met.append(text)
            else:
                harness = row.get("harness", {}).get("cpu_per_audio_s")
                if harness is not None and client == "ours/flush":
                    net = ratio(mine - harness, theirs - harness)
                    text += f" ({net:.2f}x net of the harness)"
                missed.append(text)
        line = f"{'MISS' if missed else 'PASS'} {label} <= {target}x: met at " + (
            ", ".join(met) or "-"
        )
        if missed:
            line += "; missed at " + ", ".join(missed)
        if overloaded:
            line += (
                "; overloaded (a run hit its deadline with audio unprocessed, so the ratio is "
                "not a cost ratio): " + ", ".join(overloaded)
            )
        out.append(line)
    own = []
    for key in results["order"]:
        row = cells[key]
        if all(c in row for c in ("ours/vad", "incumbent", "vad alone")):
            r = net_ratio(
                row["ours/vad"]["cpu_per_audio_s"],
                row["incumbent"]["cpu_per_audio_s"],
                row["vad alone"]["cpu_per_audio_s"],
            )
            own.append(
                f"{key} - (within the VAD's run-to-run noise)" if is_nan(r) else f"{key} {r:.2f}x"
            )
    if own:
        out.append("info same VAD, the VAD's own CPU taken out of both: " + ", ".join(own))
    return out


def _latency_verdicts(results: dict[str, Any]) -> list[str]:
    cells = results["cells"]
    out: list[str] = []
    for name, target, label in (
        ("delta_interim", TARGETS["delta_interim_p95_ms"], "delta->INTERIM p95"),
        ("completed_final", TARGETS["completed_final_p95_ms"], "completed->FINAL p95"),
        ("eos_commit", TARGETS["eos_commit_p95_ms"], "end of speech->commit p95"),
    ):
        for client in ("ours/flush", "ours/vad"):
            vals = [
                (key, cells[key][client]["lat"][name]["p95_ms"])
                for key in results["order"]
                if key.startswith("realtime") and client in cells[key]
            ]
            if not vals:
                continue
            bad = [f"{cell_n(k)}: {v:.2f}" for k, v in vals if v > target]
            good = [cell_n(k) for k, v in vals if v <= target]
            none = [cell_n(k) for k, v in vals if is_nan(v)]
            out.append(
                f"{'PASS' if not bad else 'MISS'} {label} <= {target:g} ms, {client}: "
                f"met at N={good or '-'}"
                + (f"; missed at N= {', '.join(bad)} ms" if bad else "")
                + (f"; no samples (overloaded) at N={none}" if none else "")
            )
    return out


def _memory_verdicts(results: dict[str, Any]) -> list[str]:
    cells = results["cells"]
    out: list[str] = []
    idle = results.get("idle", {})
    seg_kib = results["meta"]["max_segment_bytes"] / 1024
    for what, limit, label in (
        ("idle_kib", TARGETS["idle_kib"], "idle memory <= 256 KiB"),
        (
            "peak_kib",
            TARGETS["idle_kib"] + seg_kib,
            f"peak memory <= 256 KiB + the replay buffer's audio ({seg_kib:.0f} KiB, the "
            "longest segment)",
        ),
    ):
        margins = marginal(results, what)
        big = [k for k in results["order"] if k.startswith("realtime:") and cell_n(k) >= 100]
        for client in ("ours/flush", "ours/vad"):
            figures = [
                (f"N={cell_n(k)}", float(cells[k][client][what])) for k in big if client in cells[k]
            ]
            figures += [
                (f"marginal {n0}->{n1}", v[client])
                for (n0, n1), v in margins.items()
                if n0 >= 100 and not is_nan(v[client])
            ]
            if not figures:
                out.append(f"n/a  {label}, {client}: needs real-time runs at N >= 100")
                continue
            worst = max(figures, key=lambda x: x[1])
            tag = "PASS" if worst[1] <= limit else "MISS"
            if client == "ours/vad" and tag == "MISS":
                tag = "info"  # the VAD's own memory (see VAD alone), not the plugin's
            traced = idle.get(client, {}).get("traced_kib")
            extra = ""
            if traced and what == "idle_kib":
                extra = f"; {traced:.0f} KiB traced at N={results['meta']['idle_n']}"
            out.append(
                f"{tag} {label}, {client}: worst {worst[1]:.0f} KiB per stream ({worst[0]}): "
                + ", ".join(f"{k} {v:.0f}" for k, v in figures)
                + extra
            )
    return out


def _scale_verdicts(results: dict[str, Any]) -> list[str]:
    cells = results["cells"]
    out: list[str] = []
    rt = [k for k in results["order"] if k.startswith("realtime")]
    if not rt:
        return out
    top = max(rt, key=cell_n)
    row = cells[top]
    for client in PLUGINS:
        if client not in row:
            continue
        ck = row[client]["check"]
        n = row[client]["streams"]
        ok = ck["streams_ok"] == n and ck["behind"] == 0
        tag = ("PASS" if ok else "MISS") if client.startswith("ours") else "info"
        vad_alone = row.get("vad alone", {})
        if client == "ours/vad" and not ok and vad_alone.get("timed_out"):
            tag = "info"  # the VAD alone cannot keep up at this N: not the plugin's doing
        out.append(
            f"{tag} scale N={cell_n(top)} real time, {client}: {ck['streams_ok']}/{n} "
            f"streams all finals correct, {ck['behind']} behind, client load "
            f"{row[client]['load']:.2f} cores"
        )
    return out


VERDICTS: tuple[Callable[[dict[str, Any]], list[str]], ...] = (
    _cpu_verdicts,
    _latency_verdicts,
    _memory_verdicts,
    _scale_verdicts,
)


def verdicts(results: dict[str, Any]) -> list[str]:
    """One line per target: where in the matrix ours meets it and where not."""
    return [line for judge in VERDICTS for line in judge(results)]
