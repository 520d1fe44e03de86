"""Reporting: the printed table, the results file, the progress lines and the profile summary.

:func:`render` prints a results dict (``analysis.summarize``, or a ``bench-results.json`` read
back with :func:`read_results`) as one table made of :data:`SECTIONS`. The rows of the
sections that list figures by name are declared in :data:`LATENCY_ROWS`, :data:`MEMORY_ROWS`
and :data:`FIGURE_ROWS`; ``bench/README.md`` says how to add one.
"""

from __future__ import annotations

import io
import json
import pstats
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import ALL_CLIENTS, PLUGINS, TARGETS, TRANSLATION, VARIANTS, cell_n, marginal
from stats import NAN, cost_ratio, is_nan, maximum, median, net_ratio, per_stream_second


def _f(x: float, digits: int = 2) -> str:
    return "-" if is_nan(x) else f"{x:.{digits}f}"


def _x(r: float) -> str:
    """A ratio as printed: ``-`` for none (no figure, or a difference lost in the noise)."""
    return "-" if is_nan(r) else f"{r:.2f}x"


def _cell(row: dict[str, Any], client: str, key: str, scale: float = 1.0) -> float:
    value = row.get(client, {}).get(key)
    return NAN if value is None else float(value) * scale


# ----------------------------------------------------------------------------------------------
# rows declared by name


def _cells(results: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """``(mode, N, row)`` of every cell, in the order the cells ran; a row maps each client to
    its figures."""
    for key in results["order"]:
        mode, n = key.split(":")
        yield mode, n, results["cells"][key]


def _latency(row: dict[str, Any], client: str, name: str) -> dict[str, Any] | None:
    """``client``'s latency figures ``name`` in a cell's row, or None when it has no sample."""
    lat: dict[str, Any] | None = row.get(client, {}).get("lat", {}).get(name)
    return None if lat is None or lat["n"] == 0 else lat


@dataclass(frozen=True)
class LatencyRow:
    """A row of the latency table: one ``analysis.LATENCIES`` name, per real-time cell."""

    name: str
    label: str


LATENCY_ROWS: tuple[LatencyRow, ...] = (
    LatencyRow("delta_interim", "delta->INTERIM"),
    LatencyRow("completed_final", "completed->FINAL"),
    LatencyRow("eos_commit", "end of speech->commit"),
    LatencyRow("eos_server", "  ...->commit at server"),
    LatencyRow("eos_final", "end of speech->FINAL *"),
)


@dataclass(frozen=True)
class MemoryRow:
    """Rows of the memory table: one per-stream KiB figure, at each real-time N >= 10, then
    as the marginal growth between consecutive N."""

    key: str
    label: str


MEMORY_ROWS: tuple[MemoryRow, ...] = (
    MemoryRow("idle_kib", "idle RSS"),
    MemoryRow("peak_kib", "peak RSS growth"),
)


@dataclass(frozen=True)
class FigureRow:
    """Rows of the "Other figures" table: one ``analysis.FIGURES`` name (the cells hold its
    median), one line per cell of ``modes``: each of ``clients``, then each ratio
    ``(label, numerator client, denominator client)``."""

    label: str
    key: str
    scale: float = 1.0
    digits: int = 2
    clients: tuple[str, ...] = PLUGINS
    ratios: tuple[tuple[str, str, str], ...] = (
        ("A ratio", "ours/flush", "incumbent"),
        ("V ratio", "ours/vad", "incumbent"),
    )
    modes: tuple[str, ...] = ("realtime", "fast")


FIGURE_ROWS: tuple[FigureRow, ...] = (
    FigureRow(
        "translation: CPU ms/audio s",
        "cpu_per_audio_s",
        scale=1000,
        clients=("ours/flush", *TRANSLATION),
        ratios=(
            ("T/flush", "ours/translate", "ours/flush"),
            ("I/flush", "ours/interpret", "ours/flush"),
        ),
        modes=("realtime",),
    ),
    FigureRow(
        "wire sent, kB/s (pcm16, pcmu)",
        "wire_sent",
        scale=0.001,
        clients=("ours/flush", "ours/pcmu"),
        ratios=(("pcmu/pcm16", "ours/pcmu", "ours/flush"),),
    ),
    FigureRow(
        "CPU, ms/audio s (pcm16, pcmu)",
        "cpu_per_audio_s",
        scale=1000.0,
        clients=("ours/flush", "ours/pcmu"),
        ratios=(("pcmu/pcm16", "ours/pcmu", "ours/flush"),),
    ),
)
"""Per-run figures beyond the fixed tables; the section is left out while this is empty."""

VOICE_ROWS: tuple[LatencyRow, ...] = (
    LatencyRow("start_ready", "stream start->session ready"),
    LatencyRow("first_interim", "first audio->first INTERIM"),
    LatencyRow("commit_preflight", "commit->PREFLIGHT"),
    LatencyRow("commit_final", "commit->FINAL"),
)
"""The voice-agent rows: ours/cold and ours/warm, per real-time cell."""


# ----------------------------------------------------------------------------------------------
# sections


Section = Callable[[dict[str, Any]], list[str]]


def header_section(results: dict[str, Any]) -> list[str]:
    """What ran, how much CPU the hypervisor took, what A and V compare."""
    meta = results["meta"]
    cells = results["cells"]
    steals = [x.get("steal", 0.0) for row in cells.values() for x in row.values()]
    return [
        f"openai-rt bench: recording {meta['recording']['seconds']:.2f} s, "
        f"{len(meta['recording']['speech'])} utterances, {meta['frame_ms']} ms frames, "
        f"real-time streams spread over {meta['stagger']:g} s; wall {meta['wall_seconds']:.0f} s",
        f"  CPU stolen by the hypervisor during the runs: median {median(steals, empty=0):.0%}"
        f", max {maximum(steals, empty=0):.0%} (noise: latency tails and CPU figures move with it)",
        "  A = AgentSession config: ours/flush (no VAD; flush() at each end of speech) vs the",
        "      incumbent with its built-in VAD.  V = the same inference.VAD given to both:",
        "      ours/vad vs the incumbent (its built-in VAD is that VAD).  ratio = ours / incumbent",
    ]


def cpu_section(results: dict[str, Any]) -> list[str]:
    """CPU per audio second per stream, every client, A and V ratios, gross and net."""
    cells = results["cells"]
    lines = [
        "CPU: client process ms per audio second per stream, median of runs (! = overloaded: the",
        "run hit its deadline, so not all audio was processed)   [targets: A <= "
        f"{TARGETS['cpu_session']:g}x, V <= {TARGETS['cpu_vad']:g}x]",
        f"  {'mode':9}{'N':>4}{'runs':>5} {'ours/flush':>10} {'ours/vad':>9} {'incumbent':>9}"
        f" {'harness':>8} {'VAD alone':>9} {'A ratio':>7} {'A net':>6} {'V ratio':>7}"
        f" {'V net':>6}   load: flush  inc",
    ]
    for mode, n, row in _cells(results):
        cpu = {c: _cell(row, c, "cpu_per_audio_s", 1000) for c in ALL_CLIENTS}
        mark = {c: "!" if row.get(c, {}).get("timed_out") else " " for c in ALL_CLIENTS}
        runs = max((x.get("runs", 0) for c, x in row.items() if c in PLUGINS), default=0)
        flush, vad_, inc = cpu["ours/flush"], cpu["ours/vad"], cpu["incumbent"]
        harness, vad = cpu["harness"], cpu["vad alone"]
        lines.append(
            f"  {mode:9}{n:>4}{runs:>5} {_f(flush):>9}{mark['ours/flush']}"
            f" {_f(vad_):>8}{mark['ours/vad']} {_f(inc):>8}"
            f"{mark['incumbent']} {_f(harness):>7}{mark['harness']} {_f(vad):>8}{mark['vad alone']}"
            f" {_x(cost_ratio(flush, inc)):>7} {_x(net_ratio(flush, inc, harness)):>6}"
            f" {_x(cost_ratio(vad_, inc)):>7} {_x(net_ratio(vad_, inc, vad)):>6}"
            f"   {_f(_cell(row, 'ours/flush', 'load')):>11} {_f(_cell(row, 'incumbent', 'load')):>4}"
        )
    lines += [
        "  harness: the feeder, the framework's push_frame and the event loop, with a stream that",
        "  only drains its input. A net = (ours/flush - harness) / (incumbent - harness);",
        "  V net = (ours/vad - VAD alone) / (incumbent - VAD alone): the plugins' own shares;",
        "  - when a difference is negative: lost in the run-to-run noise of the VAD.",
    ]
    novad = [
        (key, cells[key]["ours/flush"], cells[key]["incumbent/novad"])
        for key in results["order"]
        if "incumbent/novad" in cells[key] and "ours/flush" in cells[key]
    ]
    if novad:
        lines.append(
            "  no VAD in either, fast: ours/flush vs the incumbent with vad=None (its transport"
            " alone; it never commits): "
            + ", ".join(
                f"N={cell_n(k)} {a['cpu_per_audio_s'] * 1000:.2f} vs "
                f"{b['cpu_per_audio_s'] * 1000:.2f}"
                f" ({_x(cost_ratio(a['cpu_per_audio_s'], b['cpu_per_audio_s']))})"
                for k, a, b in novad
            )
        )
    return lines


def latency_section(results: dict[str, Any]) -> list[str]:
    """:data:`LATENCY_ROWS` for each real-time cell, p50/p95/max per plugin, A and V p95 ratios."""
    lines = [
        "Latency the plugin adds, real time, ms p50/p95/max (p50, p95: median over the runs)",
        f"  [targets, p95: delta->INTERIM <= {TARGETS['delta_interim_p95_ms']:g},"
        f" completed->FINAL <= {TARGETS['completed_final_p95_ms']:g},"
        f" end of speech->commit <= {TARGETS['eos_commit_p95_ms']:g}]",
        f"  {'':23}{'N':>4} {'ours/flush':>20} {'ours/vad':>22} {'incumbent':>22}"
        f" {'A p95':>7} {'V p95':>7}",
    ]
    for mode, n, row in _cells(results):
        if mode != "realtime":
            continue
        for spec in LATENCY_ROWS:
            parts = []
            p95: dict[str, float] = {}
            for client in PLUGINS:
                lat = _latency(row, client, spec.name)
                if lat is None:
                    parts.append("-")
                    p95[client] = NAN
                    continue
                parts.append(f"{lat['p50_ms']:.2f}/{lat['p95_ms']:.2f}/{lat['max_ms']:.1f}")
                p95[client] = lat["p95_ms"]
            lines.append(
                f"  {spec.label:23}{n:>4} {parts[0]:>20} {parts[1]:>22} {parts[2]:>22}"
                f" {_x(cost_ratio(p95['ours/flush'], p95['incumbent'])):>7}"
                f" {_x(cost_ratio(p95['ours/vad'], p95['incumbent'])):>7}"
            )
    return lines + [
        "  delta->INTERIM: emulator sent the delta -> an INTERIM (or, after the commit, a PREFLIGHT)",
        "  shows its text (the FINAL if none ever does). End of speech: flush() for ours/flush,",
        "  else the VAD's END_OF_SPEECH",
        "  as the plugin reads it; commit: written to the socket (at server: read by the emulator,",
        "  after the append before it). The emulator is a separate process on the same clock.",
        "  * end to end, from speech end + 250 ms (where a session VAD ends speech) to the FINAL:",
        "    includes the emulator and the VAD; a stream with one over 1 s is behind",
    ]


def memory_section(results: dict[str, Any]) -> list[str]:
    """:data:`MEMORY_ROWS` per stream, KiB, with the idle tracemalloc share first."""
    meta = results["meta"]
    lines = [
        "Memory per stream, KiB (idle = N connected streams, no audio; marginal = growth from",
        "the next-smaller N to this one, divided by the streams added)   "
        f"[target idle <= {TARGETS['idle_kib']:g}]",
        f"  {'':27}{'ours/flush':>10} {'ours/vad':>9} {'incumbent':>9} {'VAD alone':>9}"
        f" {'A ratio':>7} {'V ratio':>7}",
    ]
    mem_clients = (*PLUGINS, "vad alone")

    def mem_row(label: str, vals: dict[str, float]) -> None:
        lines.append(
            f"  {label:27}{_f(vals['ours/flush'], 1):>10} {_f(vals['ours/vad'], 1):>9}"
            f" {_f(vals['incumbent'], 1):>9} {_f(vals.get('vad alone', NAN), 1):>9}"
            f" {_x(cost_ratio(vals['ours/flush'], vals['incumbent'])):>7}"
            f" {_x(cost_ratio(vals['ours/vad'], vals['incumbent'])):>7}"
        )

    idle = results.get("idle", {})
    if idle:
        mem_row(
            f"idle, tracemalloc N={meta['idle_n']}",
            {c: idle.get(c, {}).get("traced_kib", NAN) for c in PLUGINS},
        )
    for spec in MEMORY_ROWS:
        for mode, n, row in _cells(results):
            if mode == "realtime" and int(n) >= 10:
                mem_row(f"{spec.label}, N={n}", {c: _cell(row, c, spec.key) for c in mem_clients})
        for (n0, n1), vals in marginal(results, spec.key).items():
            mem_row(f"{spec.label}, marginal {n0}->{n1}", vals)
    return lines


def wire_section(results: dict[str, Any]) -> list[str]:
    """Bytes per audio second per stream on the websockets, each way."""
    lines = ["Bytes on the wire per audio second per stream, sent / received (TCP payload, kB)"]
    for mode, n, row in _cells(results):
        parts = []
        for client in (*PLUGINS, "ours/pcmu"):
            r = row.get(client)
            if r is not None:
                parts.append(f"{client} {r['wire_sent'] / 1000:.1f} / {r['wire_recv'] / 1000:.2f}")
        lines.append(f"  {mode:9}{n:>4}   " + "   ".join(parts))
    return lines


def figures_section(results: dict[str, Any]) -> list[str]:
    """:data:`FIGURE_ROWS`, when there are any."""
    if not FIGURE_ROWS:
        return []
    lines = ["Other figures per stream, median of runs"]
    for spec in FIGURE_ROWS:
        lines.append(
            f"  {spec.label:27}{'N':>4}"
            + "".join(f" {c:>{max(11, len(c))}}" for c in spec.clients)
            + "".join(f" {label:>9}" for label, _, _ in spec.ratios)
        )
        for mode, n, row in _cells(results):
            if mode not in spec.modes:
                continue
            figs = [_cell(row, c, spec.key, spec.scale) for c in spec.clients]
            ratios = [
                cost_ratio(_cell(row, a, spec.key), _cell(row, b, spec.key))
                for _, a, b in spec.ratios
            ]
            lines.append(
                f"    {mode:25}{n:>4}"
                + "".join(
                    f" {_f(x, spec.digits):>{max(11, len(c))}}"
                    for c, x in zip(spec.clients, figs, strict=True)
                )
                + "".join(f" {_x(r):>9}" for r in ratios)
            )
    return lines


def voice_section(results: dict[str, Any]) -> list[str]:
    """:data:`VOICE_ROWS`: a first turn without and with ``STT.prewarm()``, and the head start
    a preflight transcript gives, per real-time cell."""
    clients = ("ours/cold", "ours/warm")
    body: list[str] = []
    for mode, n, row in _cells(results):
        if mode != "realtime" or not any(c in row for c in clients):
            continue
        for spec in VOICE_ROWS:
            parts = []
            for client in clients:
                lat = _latency(row, client, spec.name)
                if lat is None:
                    parts.append("-")
                else:
                    parts.append(f"{lat['p50_ms']:.1f}/{lat['p95_ms']:.1f}/{lat['max_ms']:.1f}")
            body.append(f"  {spec.label:29}{n:>4} {parts[0]:>22} {parts[1]:>22}")
    if not body:
        return []
    return [
        "Voice agent, real time, ms p50/p95/max: streams opened as their audio starts, on an",
        "emulator with a 300 ms handshake and `completed` 400 ms after each commit",
        f"  {'':29}{'N':>4} {'ours/cold':>22} {'ours/warm (prewarm)':>22}",
        *body,
        "  session ready: the stream's core went LIVE (warm: it took over the prewarmed session).",
        "  commit: flush(); PREFLIGHT: the item's first preflight transcript (preemptive",
        "  generation may start there); FINAL: after the server's completed.",
    ]


CHECK_NOTES = (
    "audio_mismatch",
    "boundary_mismatch",
    "items_without_final",
    "errors",
    "eos_without_commit",
)
"""Check counters printed beside a correctness row when not zero."""


def correctness_section(results: dict[str, Any]) -> list[str]:
    """Finals and streams correct per cell and plugin; real time: behind, feeder lag."""
    lines = [
        "Correctness under load: finals equal to the server's transcript of the committed audio /",
        "committed items (whose audio is checked against what was sent); fully correct streams;",
        "real time: streams behind, and how late the feeder woke (event-loop lag) p95 / max",
    ]
    for mode, n, row in _cells(results):
        for client in (*PLUGINS, *VARIANTS, *TRANSLATION):
            r = row.get(client)
            if r is None:
                continue
            ck = r["check"]
            extra = ""
            if mode == "realtime":
                extra = (
                    f"  behind {ck['behind']}  lag {r['feed_lag_p95'] * 1000:.0f} /"
                    f" {r['feed_lag_max'] * 1000:.0f} ms"
                )
            notes = [f"{k} {ck[k]}" for k in CHECK_NOTES if ck.get(k)]
            if r["timed_out"]:
                notes.append(f"deadline hit in {r['timed_out']} run(s)")
            lines.append(
                f"  {mode:9}{n:>4} {client:14} finals {ck['finals_ok']}/{ck['items']}"
                f"  streams {ck['streams_ok']}/{r['streams']}{extra}"
                + (f"  [{', '.join(notes)}]" if notes else "")
            )
            for e in r["error_samples"][:1]:
                lines.append(f"  {'':25}error: {e[:110]}")
    return lines


def targets_section(results: dict[str, Any]) -> list[str]:
    """The verdicts (``analysis.verdicts``)."""
    return ["Targets (ours)", *("  " + line for line in results["verdicts"])]


SECTIONS: tuple[Section, ...] = (
    header_section,
    cpu_section,
    latency_section,
    memory_section,
    wire_section,
    figures_section,
    voice_section,
    correctness_section,
    targets_section,
)
"""The table, top to bottom; a section with no lines is left out."""


def render(results: dict[str, Any]) -> str:
    """The printed table."""
    lines: list[str] = []
    for section in SECTIONS:
        block = section(results)
        if block:
            lines += ["", *block]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# progress, profile, results file


def run_line(
    mode: str, n: int, client: str, rep: int, reps: int, m: dict[str, Any], secs: float
) -> str:
    """The progress line printed after each run (``m``: ``analysis.analyze``'s figures)."""
    ck = m["check"]
    return (
        f"  {mode:8} N={n:<4} {client:14} run {rep + 1}/{reps}: "
        f"{m['cpu_per_audio_s'] * 1000:6.2f} ms CPU/audio-s, "
        f"finals {ck['finals_ok']}/{ck['items']}, "
        f"streams ok {ck['streams_ok']}/{n}, "
        f"{secs:4.1f} s, steal {m['steal']:.0%}"
    )


def profile_summary(path: Path, result: dict[str, Any], what: str) -> str:
    """Top functions of a cProfile'd run (self time, then cumulative)."""
    buf = io.StringIO()
    profile = pstats.Stats(str(path), stream=buf)
    profile.strip_dirs().sort_stats("tottime").print_stats(25)
    buf.write("Top 20 by cumulative time:\n")
    profile.sort_stats("cumulative").print_stats(20)
    total = result["cpu"]
    per_audio_s = per_stream_second(total, result["spec"]["n"], result["audio_seconds"])
    head = (
        f"\ncProfile of {what}: {total:.2f} s CPU "
        f"({per_audio_s * 1000:.2f} ms per audio second, "
        "inflated by the profiler); top 25 by self time:\n"
    )
    return head + buf.getvalue()


def write_results(results: dict[str, Any], path: str | Path) -> None:
    """Write the results file (``bench-results.json``)."""
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def read_results(path: str | Path) -> dict[str, Any]:
    """Read a results file written by this or an earlier version of the bench."""
    with open(path) as f:
        results: dict[str, Any] = json.load(f)
    return results
