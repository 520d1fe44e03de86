"""``nox -s bench``: this plugin side by side with the incumbent ``livekit-plugins-openai`` 1.8.9.

The emulator runs in a process of its own (``emulator_server.py``, a fresh emulator per run);
each plugin runs in its own client process (``client.py``, forked fresh per run from a
pre-imported parent), one run at a time, on the same recording (``recording.py``). After each
run the driver matches the client's event times against the emulator's log, checks every final,
and at the end prints one table and writes ``bench-results.json``. See ``bench/README.md``.

Clients (``--clients``, see ``CLIENTS``): ``ours/flush`` (the AgentSession configuration: no
VAD, ``flush()`` where the session's VAD ends speech), ``ours/vad`` and ``incumbent`` (both with
``inference.VAD(model="silero")``, the incumbent's built-in VAD, so its one run per cell serves
both comparisons), and reference runs. Modes: ``realtime`` (frames pushed at the audio clock,
streams spread over ``--stagger`` s) and ``fast`` (no clock).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import recording

HERE = Path(__file__).resolve().parent
CLIENTS = {
    "ours/flush": ("ours", "session"),
    "ours/vad": ("ours", "vad"),
    "incumbent": ("incumbent", "vad"),
    "vad alone": ("vad", "vad"),
    "harness": ("null", "null"),
    "incumbent/novad": ("incumbent", "novad"),
}
"""name: (plugin, configuration). Besides the three compared clients, references (one run per
cell): the VAD alone, fed the same way; the harness alone (a stream that only drains its
input); and, in fast mode, the incumbent with ``vad=None`` (it then never commits: its
transport cost alone, to set beside ours/flush)."""
PLUGINS = ("ours/flush", "ours/vad", "incumbent")
REFERENCES = ("vad alone", "harness", "incumbent/novad")
ZYGOTE = {"ours": "ours", "incumbent": "incumbent", "vad": "base", "null": "base"}
"""Which pre-imported client process runs each plugin ("base": livekit-agents only)."""
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


# ----------------------------------------------------------------------------------------------
# processes


def _steal() -> tuple[int, int]:
    """(steal, total) jiffies of the machine: CPU time the hypervisor gave to someone else."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def _http(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


class Zygote:
    """A pre-imported client process for one plugin (see client.py)."""

    def __init__(self, plugin: str, log: IO[str]) -> None:
        self.plugin = plugin
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "client.py"), "--plugin", plugin],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )

    def wait_ready(self) -> None:
        """Block until the imports are done."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.plugin} client failed to start (see the log)")

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Fork a child for ``spec`` and return its result."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.plugin} client died")
        with open(spec["out"]) as f:
            result: dict[str, Any] = json.load(f)
        return result

    def close(self) -> None:
        """End the process."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ----------------------------------------------------------------------------------------------
# analysis of one run


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


@dataclass
class Audio:
    """The recording as the checker needs it."""

    pcm: bytes
    frame_bytes: int
    frame_s: float
    flush_frames: list[int]


def analyze(result: dict[str, Any], dump: dict[str, Any], audio: Audio) -> dict[str, Any]:
    """Per-run metrics: CPU, memory, wire, latency samples, correctness."""
    spec = result["spec"]
    n = spec["n"]
    secs = result["audio_seconds"]
    flushing = spec["plugin"] == "ours" and spec["config"] == "session"
    if spec["plugin"] in ("vad", "null"):
        dump = {"sessions": {}}
        result = {**result, "streams": []}
    out: dict[str, Any] = {
        "n": n,
        "cpu_per_audio_s": result["cpu"] / (n * secs),
        "load": result["cpu"] / result["wall"],
        "wall": result["wall"],
        "connect_s": result["connect_seconds"],
        "idle_kib": (result["rss_idle"] - result["rss_base"]) / n / 1024,
        "peak_kib": (result["peak_rss"] - result["rss_base"]) / n / 1024,
        "wire_sent": result["wire"]["sent"] / (n * secs),
        "wire_recv": result["wire"]["received"] / (n * secs),
        "wire_sockets": result["wire"]["sockets"],
        "feed_lag_max": result["feed_lag_max"],
        "feed_lag_p95": result["feed_lag_p95"],
        "timed_out": result["timed_out"],
        "emulator_cpu": dump.get("emulator_cpu", 0.0),
        "user_s": result["user"],
        "sys_s": result["sys"],
        "minflt": result["minflt"],
        "ctxsw": result["ctxsw"],
        "gc": result["gc"],
        "steal": result.get("steal", 0.0),
    }
    sessions: dict[str, dict[str, Any]] = dump["sessions"]
    owner: dict[str, str] = {}
    t_end = result["t_end"]
    for sid, s in sessions.items():
        # items committed after the measured window come from the teardown (ours commits
        # the rest of the audio when its input closes): not part of the run
        s["items"] = [it for it in s["items"] if s["committed"].get(it["item_id"], 1e18) <= t_end]
        for it in s["items"]:
            owner[it["item_id"]] = sid
        for d in s["deltas"]:
            owner.setdefault(d[1], sid)

    lat: dict[str, list[float]] = {
        name: [] for name in ("delta_interim", "completed_final", "eos_commit", "eos_server")
    }
    lat["eos_final"] = []
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
        if len(sids) != 1:
            c["multi_session"] += len(sids) != 0
            ok = False
        final_by_item: dict[str, list[tuple[float, str]]] = {}
        for t, item, text in finals:
            final_by_item.setdefault(item, []).append((t, text))
        c["finals"] += len(finals)
        offset = 0
        for sid in sorted(sids):
            s = sessions[sid]
            # every committed item: the audio is the next slice of what was sent, and exactly
            # one final with exactly the server's transcript reached the client
            for k, it in enumerate(s["items"]):
                c["items"] += 1
                chunk = audio.pcm[offset : offset + it["len"]]
                if len(chunk) != it["len"] or zlib.crc32(chunk) != it["crc"]:
                    c["audio_mismatch"] += 1
                    ok = False
                offset += it["len"]
                if flushing and k < len(audio.flush_frames):
                    if offset != (audio.flush_frames[k] + 1) * audio.frame_bytes:
                        c["boundary_mismatch"] += 1
                        ok = False
                got = final_by_item.get(it["item_id"], [])
                if it["transcript"] and len(got) == 1 and got[0][1] == it["transcript"]:
                    c["finals_ok"] += 1
                    if it["item_id"] in s["completed"]:
                        lat["completed_final"].append(got[0][0] - s["completed"][it["item_id"]])
                elif it["transcript"] or got:
                    c["items_without_final"] += not got
                    ok = False
            # delta -> first INTERIM showing it (or the FINAL, when no interim ever did)
            interims: dict[str, list[tuple[float, int]]] = {}
            for t, item, length in st["interims"]:
                interims.setdefault(item, []).append((t, length))
            cum: dict[str, int] = {}
            pos: dict[str, int] = {}
            for t_s, item, length in s["deltas"]:
                cum[item] = cum.get(item, 0) + length
                c["deltas"] += 1
                seen = interims.get(item, [])
                j = pos.get(item, 0)
                while j < len(seen) and seen[j][1] < cum[item]:
                    j += 1
                pos[item] = j
                if j < len(seen):
                    lat["delta_interim"].append(seen[j][0] - t_s)
                else:
                    c["deltas_not_in_interim"] += 1
                    if item in final_by_item:
                        lat["delta_interim"].append(final_by_item[item][0][0] - t_s)
            # end of speech -> the commit written to the socket (client) / read by the server
            for e in st["eos"]:
                sent = [x for x in st["commits"] if x >= e]
                if sent and sent[0] - e < 5.0:
                    lat["eos_commit"].append(sent[0] - e)
                else:
                    c["eos_without_commit"] += 1
                got = [x for x in s["commits_in"] if x >= e]
                if got and got[0] - e < 5.0:
                    lat["eos_server"].append(got[0] - e)
        committed = sum(len(sessions[sid]["items"]) for sid in sids)
        if flushing:
            ok = ok and committed == len(audio.flush_frames)
        elif spec["mode"] == "realtime":
            ok = ok and committed == spec["segments"]
        ok = ok and len(finals) == committed
        if spec["mode"] == "realtime":
            ends = [st["t0"] + (f + 1) * audio.frame_s for f in audio.flush_frames]
            ordered = sorted(t for t, _, _ in finals)
            e2e = [t - e for t, e in zip(ordered, ends, strict=False)]
            lat["eos_final"].extend(e2e)
            if not ok or len(ordered) < len(ends) or max(e2e, default=0.0) > BEHIND_SECONDS:
                c["behind"] += 1
        c["streams_ok"] += ok
    out["lat"] = {
        name: {
            "n": len(v),
            "p50": _pct(v, 50),
            "p95": _pct(v, 95),
            "max": max(v, default=float("nan")),
        }
        for name, v in lat.items()
    }
    out["check"] = c
    out["error_samples"] = error_samples
    return out


# ----------------------------------------------------------------------------------------------
# aggregation and the table


def _med(runs: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in runs if key in r]
    return statistics.median(vals) if vals else float("nan")


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the per-run figures; latency samples pooled over the runs."""
    agg: dict[str, Any] = {"runs": len(runs)}
    for key in (
        "cpu_per_audio_s",
        "load",
        "wall",
        "connect_s",
        "idle_kib",
        "peak_kib",
        "wire_sent",
        "wire_recv",
        "feed_lag_max",
        "feed_lag_p95",
        "emulator_cpu",
    ):
        agg[key] = _med(runs, key)
    agg["cpu_runs"] = [r["cpu_per_audio_s"] for r in runs]
    lat: dict[str, dict[str, float]] = {}
    for name in ("delta_interim", "completed_final", "eos_commit", "eos_server", "eos_final"):
        per = [r["lat"][name] for r in runs if r["lat"][name]["n"]]
        lat[name] = {
            "n": sum(p["n"] for p in per),
            "p50_ms": statistics.median(p["p50"] for p in per) * 1000 if per else float("nan"),
            "p95_ms": statistics.median(p["p95"] for p in per) * 1000 if per else float("nan"),
            "max_ms": max(p["max"] for p in per) * 1000 if per else float("nan"),
        }
    agg["lat"] = lat
    agg["steal"] = _med(runs, "steal")
    check: dict[str, int] = {}
    for r in runs:
        for k, v in r["check"].items():
            check[k] = check.get(k, 0) + v
    agg["check"] = check
    agg["streams"] = sum(r["n"] for r in runs)
    agg["timed_out"] = sum(bool(r["timed_out"]) for r in runs)
    agg["error_samples"] = [e for r in runs for e in r["error_samples"]][:3]
    return agg


def _ratio(a: float, b: float) -> str:
    if not (a == a and b == b) or b <= 0 or a < 0:  # NaN, or a difference lost in the noise
        return "-"
    return f"{a / b:.2f}x"


def _f(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def _cell(row: dict[str, Any], client: str, key: str, scale: float = 1.0) -> float:
    value = row.get(client, {}).get(key)
    return float("nan") if value is None else float(value) * scale


def render(results: dict[str, Any]) -> str:
    """The printed table."""
    cells: dict[str, dict[str, dict[str, Any]]] = results["cells"]
    meta = results["meta"]
    order: list[str] = results["order"]
    lines: list[str] = []
    add = lines.append
    add("")
    add(
        f"openai-rt bench: recording {meta['recording']['seconds']:.2f} s, "
        f"{len(meta['recording']['speech'])} utterances, {meta['frame_ms']} ms frames, "
        f"real-time streams spread over {meta['stagger']:g} s; wall {meta['wall_seconds']:.0f} s"
    )
    steals = [x.get("steal", 0.0) for row in cells.values() for x in row.values()]
    add(
        f"  CPU stolen by the hypervisor during the runs: median {statistics.median(steals or [0]):.0%}"
        f", max {max(steals, default=0):.0%} (noise: latency tails and CPU figures move with it)"
    )
    add("  A = AgentSession config: ours/flush (no VAD; flush() at each end of speech) vs the")
    add("      incumbent with its built-in VAD.  V = the same inference.VAD given to both:")
    add("      ours/vad vs the incumbent (its built-in VAD is that VAD).  ratio = ours / incumbent")
    add("")
    add("CPU: client process ms per audio second per stream, median of runs (! = overloaded: the")
    add("run hit its deadline, so not all audio was processed)   [targets: A <= 0.25x, V <= 0.5x]")
    add(
        f"  {'mode':9}{'N':>4}{'runs':>5} {'ours/flush':>10} {'ours/vad':>9} {'incumbent':>9}"
        f" {'harness':>8} {'VAD alone':>9} {'A ratio':>7} {'A net':>6} {'V ratio':>7}"
        f" {'V net':>6}   load: flush  inc"
    )
    for key in order:
        mode, n = key.split(":")
        row = cells[key]
        cpu = {c: _cell(row, c, "cpu_per_audio_s", 1000) for c in CLIENTS}
        mark = {c: "!" if row.get(c, {}).get("timed_out") else " " for c in CLIENTS}
        runs = max((x.get("runs", 0) for c, x in row.items() if c in PLUGINS), default=0)
        harness, vad = cpu["harness"], cpu["vad alone"]
        add(
            f"  {mode:9}{n:>4}{runs:>5} {_f(cpu['ours/flush']):>9}{mark['ours/flush']}"
            f" {_f(cpu['ours/vad']):>8}{mark['ours/vad']} {_f(cpu['incumbent']):>8}"
            f"{mark['incumbent']} {_f(harness):>7}{mark['harness']} {_f(vad):>8}{mark['vad alone']}"
            f" {_ratio(cpu['ours/flush'], cpu['incumbent']):>7}"
            f" {_ratio(cpu['ours/flush'] - harness, cpu['incumbent'] - harness):>6}"
            f" {_ratio(cpu['ours/vad'], cpu['incumbent']):>7}"
            f" {_ratio(cpu['ours/vad'] - vad, cpu['incumbent'] - vad):>6}"
            f"   {_f(_cell(row, 'ours/flush', 'load')):>11} {_f(_cell(row, 'incumbent', 'load')):>4}"
        )
    add("  harness: the feeder, the framework's push_frame and the event loop, with a stream that")
    add("  only drains its input. A net = (ours/flush - harness) / (incumbent - harness);")
    add("  V net = (ours/vad - VAD alone) / (incumbent - VAD alone): the plugins' own shares;")
    add("  - when a difference is negative: lost in the run-to-run noise of the VAD.")
    novad = [
        (key, cells[key]["ours/flush"], cells[key]["incumbent/novad"])
        for key in order
        if "incumbent/novad" in cells[key] and "ours/flush" in cells[key]
    ]
    if novad:
        add(
            "  no VAD in either, fast: ours/flush vs the incumbent with vad=None (its transport"
            " alone; it never commits): "
            + ", ".join(
                f"N={k.split(':')[1]} {a['cpu_per_audio_s'] * 1000:.2f} vs "
                f"{b['cpu_per_audio_s'] * 1000:.2f} ({_ratio(a['cpu_per_audio_s'], b['cpu_per_audio_s'])})"
                for k, a, b in novad
            )
        )
    add("")
    add("Latency the plugin adds, real time, ms p50/p95/max (p50, p95: median over the runs)")
    add("  [targets, p95: delta->INTERIM <= 2, completed->FINAL <= 2, end of speech->commit <= 5]")
    names = (
        ("delta_interim", "delta->INTERIM"),
        ("completed_final", "completed->FINAL"),
        ("eos_commit", "end of speech->commit"),
        ("eos_server", "  ...->commit at server"),
        ("eos_final", "end of speech->FINAL *"),
    )
    add(
        f"  {'':23}{'N':>4} {'ours/flush':>20} {'ours/vad':>22} {'incumbent':>22}"
        f" {'A p95':>7} {'V p95':>7}"
    )
    for key in order:
        mode, n = key.split(":")
        if mode != "realtime":
            continue
        row = cells[key]
        for name, label in names:
            parts = []
            p95: dict[str, float] = {}
            for client in PLUGINS:
                lat = row.get(client, {}).get("lat", {}).get(name)
                if lat is None or lat["n"] == 0:
                    parts.append("-")
                    p95[client] = float("nan")
                    continue
                parts.append(f"{lat['p50_ms']:.2f}/{lat['p95_ms']:.2f}/{lat['max_ms']:.1f}")
                p95[client] = lat["p95_ms"]
            add(
                f"  {label:23}{n:>4} {parts[0]:>20} {parts[1]:>22} {parts[2]:>22}"
                f" {_ratio(p95['ours/flush'], p95['incumbent']):>7}"
                f" {_ratio(p95['ours/vad'], p95['incumbent']):>7}"
            )
    add("  delta->INTERIM: emulator sent the delta -> an INTERIM shows its text (the FINAL if no")
    add("  INTERIM ever does). End of speech: flush() for ours/flush, else the VAD's END_OF_SPEECH")
    add("  as the plugin reads it; commit: written to the socket (at server: read by the emulator,")
    add("  after the append before it). The emulator is a separate process on the same clock.")
    add("  * end to end, from speech end + 250 ms (where a session VAD ends speech) to the FINAL:")
    add("    includes the emulator and the VAD; a stream with one over 1 s is behind")
    add("")
    add("Memory per stream, KiB (idle = N connected streams, no audio; marginal = growth from")
    add("the next-smaller N to this one, divided by the streams added)   [target idle <= 256]")
    mem_clients = (*PLUGINS, "vad alone")
    add(
        f"  {'':27}{'ours/flush':>10} {'ours/vad':>9} {'incumbent':>9} {'VAD alone':>9}"
        f" {'A ratio':>7} {'V ratio':>7}"
    )

    def mem_row(label: str, vals: dict[str, float]) -> None:
        add(
            f"  {label:27}{_f(vals['ours/flush'], 1):>10} {_f(vals['ours/vad'], 1):>9}"
            f" {_f(vals['incumbent'], 1):>9} {_f(vals.get('vad alone', float('nan')), 1):>9}"
            f" {_ratio(vals['ours/flush'], vals['incumbent']):>7}"
            f" {_ratio(vals['ours/vad'], vals['incumbent']):>7}"
        )

    idle = results.get("idle", {})
    if idle:
        nan = float("nan")
        mem_row(
            f"idle, tracemalloc N={meta['idle_n']}",
            {c: idle.get(c, {}).get("traced_kib", nan) for c in PLUGINS},
        )
    for what, label in (("idle_kib", "idle RSS"), ("peak_kib", "peak RSS growth")):
        for key in order:
            mode, n = key.split(":")
            if mode == "realtime" and int(n) >= 10:
                mem_row(f"{label}, N={n}", {c: _cell(cells[key], c, what) for c in mem_clients})
        for (n0, n1), vals in marginal(results, what).items():
            mem_row(f"{label}, marginal {n0}->{n1}", vals)
    add("")
    add("Bytes on the wire per audio second per stream, sent / received (TCP payload, kB)")
    for key in order:
        mode, n = key.split(":")
        row = cells[key]
        parts = []
        for client in PLUGINS:
            r = row.get(client)
            if r is not None:
                parts.append(f"{client} {r['wire_sent'] / 1000:.1f} / {r['wire_recv'] / 1000:.2f}")
        add(f"  {mode:9}{n:>4}   " + "   ".join(parts))
    add("")
    add("Correctness under load: finals equal to the server's transcript of the committed audio /")
    add("committed items (whose audio is checked against what was sent); fully correct streams;")
    add("real time: streams behind, and how late the feeder woke (event-loop lag) p95 / max")
    for key in order:
        mode, n = key.split(":")
        row = cells[key]
        for client in PLUGINS:
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
            notes = [
                f"{k} {ck[k]}"
                for k in (
                    "audio_mismatch",
                    "boundary_mismatch",
                    "items_without_final",
                    "errors",
                    "eos_without_commit",
                )
                if ck.get(k)
            ]
            if r["timed_out"]:
                notes.append(f"deadline hit in {r['timed_out']} run(s)")
            add(
                f"  {mode:9}{n:>4} {client:11} finals {ck['finals_ok']}/{ck['items']}"
                f"  streams {ck['streams_ok']}/{r['streams']}{extra}"
                + (f"  [{', '.join(notes)}]" if notes else "")
            )
            for e in r["error_samples"][:1]:
                add(f"  {'':25}error: {e[:110]}")
    add("")
    add("Targets (ours)")
    for line in results["verdicts"]:
        add("  " + line)
    return "\n".join(lines)


def marginal(results: dict[str, Any], what: str) -> dict[tuple[int, int], dict[str, float]]:
    """Per-stream memory as the growth between consecutive real-time N >= 10 (the fixed,
    once-per-process part cancels out)."""
    cells = results["cells"]
    ns = sorted(
        int(k.split(":")[1])
        for k in results["order"]
        if k.startswith("realtime:") and int(k.split(":")[1]) >= 10
    )
    out: dict[tuple[int, int], dict[str, float]] = {}
    for n0, n1 in zip(ns, ns[1:], strict=False):
        vals: dict[str, float] = {}
        for c in CLIENTS:
            a = cells[f"realtime:{n0}"].get(c, {}).get(what)
            b = cells[f"realtime:{n1}"].get(c, {}).get(what)
            vals[c] = float("nan") if a is None or b is None else (b * n1 - a * n0) / (n1 - n0)
        out[(n0, n1)] = vals
    return out


def verdicts(results: dict[str, Any]) -> list[str]:
    """One line per target: where in the matrix ours meets it and where not."""
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
            ratio = row[client]["cpu_per_audio_s"] / row["incumbent"]["cpu_per_audio_s"]
            text = f"{key} {ratio:.2f}x"
            if row["incumbent"]["timed_out"] or row[client]["timed_out"]:
                overloaded.append(text)
            elif ratio <= target:
                met.append(text)
            else:
                harness = row.get("harness", {}).get("cpu_per_audio_s")
                if harness is not None and client == "ours/flush":
                    net = (row[client]["cpu_per_audio_s"] - harness) / (
                        row["incumbent"]["cpu_per_audio_s"] - harness
                    )
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
            vad = row["vad alone"]["cpu_per_audio_s"]
            mine = row["ours/vad"]["cpu_per_audio_s"] - vad
            theirs = row["incumbent"]["cpu_per_audio_s"] - vad
            if theirs > 0 and mine >= 0:
                own.append(f"{key} {mine / theirs:.2f}x")
            else:
                own.append(f"{key} - (within the VAD's run-to-run noise)")
    if own:
        out.append("info same VAD, the VAD's own CPU taken out of both: " + ", ".join(own))
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
            bad = [f"{k.split(':')[1]}: {v:.2f}" for k, v in vals if v > target]
            good = [int(k.split(":")[1]) for k, v in vals if v <= target]
            none = [int(k.split(":")[1]) for k, v in vals if v != v]
            out.append(
                f"{'PASS' if not bad else 'MISS'} {label} <= {target:g} ms, {client}: "
                f"met at N={good or '-'}"
                + (f"; missed at N= {', '.join(bad)} ms" if bad else "")
                + (f"; no samples (overloaded) at N={none}" if none else "")
            )
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
        big = [
            k for k in results["order"] if k.startswith("realtime:") and int(k.split(":")[1]) >= 100
        ]
        for client in ("ours/flush", "ours/vad"):
            figures = [
                (f"N={k.split(':')[1]}", float(cells[k][client][what]))
                for k in big
                if client in cells[k]
            ]
            figures += [
                (f"marginal {n0}->{n1}", v[client])
                for (n0, n1), v in margins.items()
                if n0 >= 100 and v[client] == v[client]
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
    rt = [k for k in results["order"] if k.startswith("realtime")]
    if rt:
        top = max(rt, key=lambda k: int(k.split(":")[1]))
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
                f"{tag} scale N={top.split(':')[1]} real time, {client}: {ck['streams_ok']}/{n} "
                f"streams all finals correct, {ck['behind']} behind, client load "
                f"{row[client]['load']:.2f} cores"
            )
    return out


# ----------------------------------------------------------------------------------------------
# main


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _strs(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description="openai-rt vs livekit-plugins-openai benchmark")
    p.add_argument(
        "--quick", action="store_true", help="smoke run (< 1 min): N=10, one run each, no VAD alone"
    )
    p.add_argument("--n", type=_ints, default=None, help="stream counts (1,10,100,300)")
    p.add_argument("--modes", type=_strs, default=["realtime", "fast"])
    p.add_argument(
        "--clients", type=_strs, default=list(CLIENTS), help="ours/flush,ours/vad,incumbent"
    )
    p.add_argument("--repeats", type=int, default=None, help="runs per cell (default: by N)")
    p.add_argument(
        "--fast-vad-max-n",
        type=int,
        default=100,
        help="largest N of the fast-mode runs with a VAD (at 300 they take ~50 s each: the VAD)",
    )
    p.add_argument("--frame-ms", type=int, default=50, help="frame size pushed (RoomIO: 50)")
    p.add_argument("--stagger", type=float, default=1.0, help="real-time stream start spread")
    p.add_argument("--idle-n", type=int, default=100, help="streams for the tracemalloc run")
    p.add_argument(
        "--profile",
        nargs="?",
        const="ours/flush:fast:100",
        default=None,
        metavar="CLIENT:MODE:N",
        help="also run one cProfile'd run (default ours/flush:fast:100) and print its top functions",
    )
    p.add_argument(
        "--spawn",
        action="store_true",
        help="start each run in a fresh interpreter instead of forking a pre-imported one",
    )
    p.add_argument("--keep-dumps", action="store_true", help="keep the emulator's records")
    p.add_argument("--out", default="bench-results.json")
    p.add_argument("--render", metavar="JSON", help="print the table of an earlier results file")
    return p.parse_args(argv)


def default_repeats(mode: str, n: int) -> int:
    """Runs per cell: fewer where a run is long (real time costs the audio's duration at any N,
    and at N >= 100 the VAD runs take longer still), so the default matrix fits in ~6 min."""
    if mode == "realtime":
        return {1: 2, 10: 3}.get(n, 1)
    return 3 if n <= 10 else 1


def _in_cell(client: str, mode: str, n: int, args: argparse.Namespace) -> bool:
    """Whether ``client`` runs in the (mode, N) cell."""
    if client == "incumbent/novad":
        return mode == "fast" and n <= int(args.fast_vad_max_n)
    if mode == "fast" and client in ("ours/vad", "incumbent", "vad alone"):
        return n <= int(args.fast_vad_max_n)
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print the table, write the JSON."""
    args = parse_args(argv)
    if args.render:
        with open(args.render) as f:
            earlier = json.load(f)
        earlier["verdicts"] = verdicts(earlier)
        print(render(earlier))
        return 0
    started = time.monotonic()
    ns = args.n or ([10] if args.quick else [1, 10, 100, 300])
    clients = [c for c in args.clients if c in CLIENTS]
    if args.quick:
        clients = [c for c in clients if c in PLUGINS]  # no references
        args.idle_n = min(args.idle_n, 10)
    rec = recording.build(args.frame_ms)
    tmp = Path(tempfile.mkdtemp(prefix="openai-rt-bench-"))
    pcm_path = tmp / "recording.pcm"
    pcm_path.write_bytes(rec.pcm)
    audio = Audio(rec.pcm, rec.frame_bytes, rec.frame_ms / 1000, rec.flush_frames)
    log_path = tmp / "clients.log"
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the processes
    emu_proc = subprocess.Popen(
        [sys.executable, str(HERE / "emulator_server.py")],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert emu_proc.stdout is not None
    control = emu_proc.stdout.readline().strip()
    if not control:
        raise RuntimeError(f"emulator server failed to start; see {log_path}")
    kinds = {ZYGOTE[CLIENTS[c][0]] for c in clients} | {"ours"}
    zygotes = {k: Zygote(k, log) for k in sorted(kinds)}
    for z in zygotes.values():
        z.wait_ready()
    counter = 0

    def one(client: str, mode: str, n: int, **extra: Any) -> tuple[dict[str, Any], Any]:
        nonlocal counter
        counter += 1
        plugin, config = CLIENTS[client]
        info = _http(f"{control}/start?gateway={int(plugin == 'incumbent')}", "POST")
        spec = {
            "plugin": plugin,
            "config": config,
            "mode": mode,
            "n": n,
            "base_url": info["base_url"],
            "emu_port": info["port"],
            "control_url": control,
            "pcm_path": str(pcm_path),
            "frame_ms": rec.frame_ms,
            "flush_frames": rec.flush_frames,
            "segments": segments,
            "vad_stop_frames": vad_stops,
            "stagger": args.stagger if mode == "realtime" else 0.0,
            "out": str(tmp / f"run{counter}.json"),
            "spawn": args.spawn,
            **extra,
        }
        steal0 = _steal()
        result = zygotes[ZYGOTE[plugin]].run(spec)
        steal1 = _steal()
        busy = steal1[1] - steal0[1]
        result["steal"] = (steal1[0] - steal0[0]) / busy if busy else 0.0
        wants_dump = result.get("ok") and mode != "idle" and plugin not in ("vad", "null")
        dump = _http(f"{control}/dump") if wants_dump else None
        if dump is not None and args.keep_dumps:
            with open(spec["out"] + ".dump.json", "w") as f:
                json.dump(dump, f)
        _http(f"{control}/stop", "POST")
        if not result.get("ok"):
            raise RuntimeError(f"{client} {mode} N={n} failed:\n{result.get('error')}")
        return result, dump

    try:
        cal = zygotes["ours"].run(
            {
                "calibrate": True,
                "pcm_path": str(pcm_path),
                "frame_ms": rec.frame_ms,
                "out": str(tmp / "calibrate.json"),
            }
        )
        segments = len(cal["eos"])
        # fast mode with a VAD: push each utterance up to one frame past the VAD's end of it
        vad_stops = [int(t * 1000 / rec.frame_ms) + 1 for t in cal["eos"]]
        print(
            f"recording {rec.seconds:.2f} s; the VAD ends speech {segments} times at "
            f"{', '.join(f'{t:.2f}' for t in cal['eos'])} s; flushes after "
            f"{', '.join(f'{(f + 1) * rec.frame_ms / 1000:.2f}' for f in rec.flush_frames)} s",
            flush=True,
        )
        per_run: dict[str, dict[str, list[dict[str, Any]]]] = {}
        order: list[str] = []
        for mode in args.modes:
            for n in ns:
                key = f"{mode}:{n}"
                order.append(key)
                reps = args.repeats or (1 if args.quick else default_repeats(mode, n))
                cell_clients = [c for c in clients if _in_cell(c, mode, n, args)]
                for rep in range(reps):
                    k = rep % len(cell_clients)
                    for client in cell_clients[k:] + cell_clients[:k]:
                        if client in ("harness", "incumbent/novad") and rep > 0:
                            continue  # steady reference figures: one run is enough
                        t = time.monotonic()
                        result, dump = one(client, mode, n)
                        m = analyze(result, dump, audio)
                        per_run.setdefault(key, {}).setdefault(client, []).append(m)
                        ck = m["check"]
                        print(
                            f"  {mode:8} N={n:<4} {client:11} run {rep + 1}/{reps}: "
                            f"{m['cpu_per_audio_s'] * 1000:6.2f} ms CPU/audio-s, "
                            f"finals {ck['finals_ok']}/{ck['items']}, "
                            f"streams ok {ck['streams_ok']}/{n}, "
                            f"{time.monotonic() - t:4.1f} s, steal {m['steal']:.0%}",
                            flush=True,
                        )
        idle: dict[str, dict[str, float]] = {}
        for client in [c for c in clients if c in PLUGINS] if order else []:
            result, _ = one(client, "idle", args.idle_n, tracemalloc=True)
            idle[client] = {
                "traced_kib": result["traced_idle"] / args.idle_n / 1024,
            }
        profile_text = ""
        if args.profile:
            p_client, p_mode, p_n = args.profile.split(":")
            prof_path = tmp / "profile.prof"
            result, dump = one(p_client, p_mode, int(p_n), profile=str(prof_path))
            profile_text = _profile_summary(prof_path, result, f"{p_client}, {p_mode}, N={p_n}")
    finally:
        for z in zygotes.values():
            z.close()
        emu_proc.terminate()
        try:
            emu_proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emu_proc.kill()
        log.close()

    results: dict[str, Any] = {
        "meta": {
            "recording": rec.meta(),
            "vad_eos": cal["eos"],
            "frame_ms": rec.frame_ms,
            "stagger": args.stagger,
            "idle_n": args.idle_n,
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "wall_seconds": time.monotonic() - started,
            "clients": {c: CLIENTS[c] for c in clients},
            "max_segment_bytes": max(
                (b - a) * rec.frame_bytes
                for a, b in zip(
                    [-1, *rec.flush_frames], [*rec.flush_frames, rec.n_frames - 1], strict=True
                )
            ),
        },
        "order": order,
        "cells": {k: {c: aggregate(v) for c, v in row.items()} for k, row in per_run.items()},
        "idle": idle,
        "runs": per_run,
    }
    results["verdicts"] = verdicts(results)
    if profile_text:
        results["profile"] = profile_text
    text = render(results)
    print(text)
    if profile_text:
        print(profile_text)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    if not args.keep_dumps:
        for path in tmp.glob("run*.json*"):
            path.unlink()
    print(f"\nwrote {args.out}; client log {log_path}")
    return 0


def _profile_summary(path: Path, result: dict[str, Any], what: str) -> str:
    """Top functions of ours under cProfile (self time, then cumulative)."""
    import io

    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.strip_dirs().sort_stats("tottime").print_stats(25)
    buf.write("Top 20 by cumulative time:\n")
    stats.sort_stats("cumulative").print_stats(20)
    total = result["cpu"]
    n = result["spec"]["n"]
    head = (
        f"\ncProfile of {what}: {total:.2f} s CPU "
        f"({total / (n * result['audio_seconds']) * 1000:.2f} ms per audio second, "
        "inflated by the profiler); top 25 by self time:\n"
    )
    return head + buf.getvalue()


if __name__ == "__main__":
    sys.exit(main())
