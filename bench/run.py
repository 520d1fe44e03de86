"""``nox -s bench``: this plugin side by side with the incumbent ``livekit-plugins-openai`` 1.8.9.

This is the driver: the command line, the processes and the run matrix. The emulator runs in a
process of its own (``emulator_server.py``, a fresh emulator per run); each plugin runs in its
own client process (``client.py``, forked fresh per run from a pre-imported parent), one run at
a time, on the same recording (``recording.py``). Each run's raw records (the client's result
and the emulator's log) go to ``analysis.py``, which matches the client's event times against
the emulator's log and checks every final; ``report.py`` prints the table and writes
``bench-results.json``. See ``bench/README.md``.

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
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

import analysis
import recording
import report
from stats import fraction

HERE = Path(__file__).resolve().parent
CLIENTS = {
    "ours/flush": ("ours", "session"),
    "ours/vad": ("ours", "vad"),
    "incumbent": ("incumbent", "vad"),
    "vad alone": ("vad", "vad"),
    "harness": ("null", "null"),
    "incumbent/novad": ("incumbent", "novad"),
    "ours/translate": ("ours", "translate"),
    "ours/interpret": ("ours", "interpret"),
    "ours/pcmu": ("ours", "pcmu"),
    "ours/cold": ("ours", "cold"),
    "ours/warm": ("ours", "warm"),
}
"""name: (plugin, configuration), as ``client.py`` builds it; the names are
``analysis.PLUGINS`` (compared) and ``analysis.REFERENCES``. References, one run per cell: the
VAD alone, fed the same way; the harness alone (a stream that only drains its input); and, in
fast mode, the incumbent with ``vad=None`` (it then never commits: its transport cost alone, to
set beside ours/flush). And ``analysis.TRANSLATION``: ``TranslationSTT`` flush-driven, reading
its text (the STT of an agent) or also its translated speech (the live interpreter)."""
ZYGOTE = {"ours": "ours", "incumbent": "incumbent", "vad": "base", "null": "base"}
"""Which pre-imported client process runs each plugin ("base": livekit-agents only)."""
ONE_RUN_PER_CELL = ("harness", "incumbent/novad")
"""Steady reference figures: one run is enough."""
VOICE_EMULATOR = {"completed_delay": 0.4, "handshake_delay": 0.3}
"""A realistic server for the voice-agent rows (docs/protocol.md: both figures are [I]): a
commit's ``completed`` 400 ms later, a 300 ms websocket handshake (a distant region)."""
EMULATOR = {"ours/cold": VOICE_EMULATOR, "ours/warm": VOICE_EMULATOR}
"""Emulator settings per client (the others get the emulator's defaults)."""


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


class Processes:
    """The emulator server and one zygote per kind of client, for a whole session of runs;
    :meth:`run` does one run and returns its raw records."""

    def __init__(self, clients: list[str], rec: recording.Recording, args: argparse.Namespace):
        self.rec = rec
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="openai-rt-bench-"))
        self.pcm_path = self.tmp / "recording.pcm"
        self.pcm_path.write_bytes(rec.pcm)
        self.log_path = self.tmp / "clients.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - lives as long as the processes
        self.emu = subprocess.Popen(
            [sys.executable, str(HERE / "emulator_server.py")],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.zygotes: dict[str, Zygote] = {}
        self.counter = 0
        self.segments = 0
        self.vad_stops: list[int] = []
        assert self.emu.stdout is not None
        self.control = self.emu.stdout.readline().strip()
        if not self.control:
            self.close()
            raise RuntimeError(f"emulator server failed to start; see {self.log_path}")
        try:
            for kind in sorted({ZYGOTE[CLIENTS[c][0]] for c in clients} | {"ours"}):
                self.zygotes[kind] = Zygote(kind, self.log)
            for z in self.zygotes.values():
                z.wait_ready()
        except BaseException:
            self.close()
            raise

    def calibrate(self) -> list[float]:
        """Where the VAD ends speech in the recording (seconds); sets what the runs expect."""
        cal = self.zygotes["ours"].run(
            {
                "calibrate": True,
                "pcm_path": str(self.pcm_path),
                "frame_ms": self.rec.frame_ms,
                "out": str(self.tmp / "calibrate.json"),
            }
        )
        eos: list[float] = cal["eos"]
        self.segments = len(eos)
        # fast mode with a VAD: push each utterance up to one frame past the VAD's end of it
        self.vad_stops = [int(t * 1000 / self.rec.frame_ms) + 1 for t in eos]
        return eos

    def run(
        self, client: str, mode: str, n: int, **extra: Any
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """One run on a fresh emulator: the client's result and the emulator's log of it (None
        for the clients that open no socket, and for the idle runs)."""
        self.counter += 1
        plugin, config = CLIENTS[client]
        control = self.control
        query = {"gateway": int(plugin == "incumbent"), **EMULATOR.get(client, {})}
        info = _http(f"{control}/start?" + "&".join(f"{k}={v}" for k, v in query.items()), "POST")
        spec = {
            "plugin": plugin,
            "config": config,
            "mode": mode,
            "n": n,
            "base_url": info["base_url"],
            "emu_port": info["port"],
            "control_url": control,
            "pcm_path": str(self.pcm_path),
            "frame_ms": self.rec.frame_ms,
            "flush_frames": self.rec.flush_frames,
            "segments": self.segments,
            "vad_stop_frames": self.vad_stops,
            "stagger": self.args.stagger if mode == "realtime" else 0.0,
            "out": str(self.tmp / f"run{self.counter}.json"),
            "spawn": self.args.spawn,
            **extra,
        }
        steal0 = _steal()
        result = self.zygotes[ZYGOTE[plugin]].run(spec)
        steal1 = _steal()
        result["steal"] = fraction(steal1[0] - steal0[0], steal1[1] - steal0[1])
        wants_dump = result.get("ok") and mode != "idle" and plugin not in ("vad", "null")
        dump = _http(f"{control}/dump") if wants_dump else None
        if dump is not None and self.args.keep_dumps:
            with open(spec["out"] + ".dump.json", "w") as f:
                json.dump(dump, f)
        _http(f"{control}/stop", "POST")
        if not result.get("ok"):
            raise RuntimeError(f"{client} {mode} N={n} failed:\n{result.get('error')}")
        return result, dump

    def close(self) -> None:
        """End every process."""
        for z in self.zygotes.values():
            z.close()
        self.emu.terminate()
        try:
            self.emu.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.emu.kill()
        self.log.close()


# ----------------------------------------------------------------------------------------------
# command line and matrix


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
    if client in analysis.TRANSLATION:
        return mode == "realtime" and n in analysis.TRANSLATION_NS
    if client == "incumbent/novad":
        return mode == "fast" and n <= int(args.fast_vad_max_n)
    if client in ("ours/cold", "ours/warm"):
        return mode == "realtime"  # what a voice agent's first turn sees
    if mode == "fast" and client in ("ours/vad", "incumbent", "vad alone"):
        return n <= int(args.fast_vad_max_n)
    return True


def run_matrix(args: argparse.Namespace) -> tuple[dict[str, Any], Processes]:
    """Every run of the matrix, each analysed as it ends (a progress line per run), then the
    idle tracemalloc runs and the optional profiled run: the results (``analysis.summarize``)."""
    started = time.monotonic()
    ns = args.n or ([10] if args.quick else [1, 10, 100, 300])
    clients = [c for c in args.clients if c in CLIENTS]
    if args.quick:
        clients = [c for c in clients if c not in analysis.REFERENCES]
        args.idle_n = min(args.idle_n, 10)
    rec = recording.build(args.frame_ms)
    audio = analysis.Audio(rec.pcm, rec.frame_bytes, rec.frame_ms / 1000, rec.flush_frames)
    procs = Processes(clients, rec, args)
    try:
        vad_eos = procs.calibrate()
        print(
            f"recording {rec.seconds:.2f} s; the VAD ends speech {procs.segments} times at "
            f"{', '.join(f'{t:.2f}' for t in vad_eos)} s; flushes after "
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
                        if client in ONE_RUN_PER_CELL and rep > 0:
                            continue
                        t = time.monotonic()
                        result, dump = procs.run(client, mode, n)
                        m = analysis.analyze(result, dump, audio)
                        per_run.setdefault(key, {}).setdefault(client, []).append(m)
                        secs = time.monotonic() - t
                        print(report.run_line(mode, n, client, rep, reps, m, secs), flush=True)
        idle: dict[str, dict[str, float]] = {}
        for client in [c for c in clients if c in analysis.PLUGINS] if order else []:
            result, _ = procs.run(client, "idle", args.idle_n, tracemalloc=True)
            idle[client] = analysis.idle_figures(result)
        profile_text = ""
        if args.profile:
            p_client, p_mode, p_n = args.profile.split(":")
            prof_path = procs.tmp / "profile.prof"
            result, _ = procs.run(p_client, p_mode, int(p_n), profile=str(prof_path))
            what = f"{p_client}, {p_mode}, N={p_n}"
            profile_text = report.profile_summary(prof_path, result, what)
    finally:
        procs.close()

    meta = {
        "recording": rec.meta(),
        "vad_eos": vad_eos,
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
    }
    results = analysis.summarize(meta, order, per_run, idle)
    if profile_text:
        results["profile"] = profile_text
    return results, procs


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print the table, write the JSON (``--render``: print an earlier one)."""
    args = parse_args(argv)
    if args.render:
        earlier = report.read_results(args.render)
        earlier["verdicts"] = analysis.verdicts(earlier)
        print(report.render(earlier))
        return 0
    results, procs = run_matrix(args)
    print(report.render(results))
    if "profile" in results:
        print(results["profile"])
    report.write_results(results, args.out)
    if not args.keep_dumps:
        for path in procs.tmp.glob("run*.json*"):
            path.unlink()
    print(f"\nwrote {args.out}; client log {procs.log_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
