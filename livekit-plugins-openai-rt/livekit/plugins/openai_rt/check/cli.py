"""The command line of the live check: plan and cost, the runs, the table, the exit code."""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import sys
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from ..formats import PCM16, SAMPLE_RATE
from ..models import MODELS, estimate_cost_usd
from ..stt import STT
from ..version import __version__
from .assumptions import ASSUMPTIONS, PROBES, Observation, Outcome, judge_probe
from .probe import Target, run_options, run_stream
from .trace import Trace, TraceRecorder, parse_trace, redact_url

DEFAULT_TIMEOUT = 15.0
"""Seconds to wait for each answer of the server."""

GRACE_SECONDS = 1.0
"""Seconds to wait for what may still come (a late committed, a close after an error); a
fifth of ``--timeout`` when that is shorter."""

AUDIO_TOKENS_PER_SECOND = 10
"""For the cost estimate of token-billed models only: an assumed rate of audio input tokens
(the realtime API counts user audio at about one token per 100 ms; not verified for
transcription models)."""

OUTPUT_TOKENS = 50
"""For the cost estimate of token-billed models only: output tokens for the sample's sentence."""

SAMPLE_TEXT = "Hello, this is a test of realtime transcription."
"""What the bundled sample (``sample.wav``, 3.8 s of synthesized speech at 24 kHz) says."""


class SetupError(Exception):
    """The check cannot start (no key, bad arguments); the message says what to do."""


def sample_pcm() -> bytes:
    """The bundled sample as pcm16 mono at 24 kHz."""
    data = files(__package__).joinpath("sample.wav").read_bytes()
    with wave.open(io.BytesIO(data), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
        return w.readframes(w.getnframes())


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The check's options."""
    parser = argparse.ArgumentParser(
        prog="python -m livekit.plugins.openai_rt.check",
        description="Stream a short sample through each model on the live service (or any "
        "compatible server), record every session to JSONL (key and audio redacted), and check "
        "every assumption the plugin relies on. Exit status 1 when one differs.",
        epilog="OpenAI: set OPENAI_API_KEY. Azure: set AZURE_OPENAI_ENDPOINT and "
        "AZURE_OPENAI_API_KEY (or AZURE_OPENAI_AD_TOKEN), optionally OPENAI_API_VERSION, and pass "
        "--azure-deployment with --models naming the deployment's model.",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="comma-separated models to check (default: every known model)",
    )
    parser.add_argument("--yes", action="store_true", help="do not ask before spending")
    parser.add_argument("--out", type=Path, default=None, help="directory for the traces")
    parser.add_argument(
        "--base-url",
        default="https://api.openai.com/v1",
        help="OpenAI-style base URL (another server, e.g. the bundled emulator's)",
    )
    parser.add_argument(
        "--azure-deployment",
        default=None,
        help="check this Azure OpenAI deployment (its model family is the one --models names)",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="audio speed, in multiples of real time (0: as fast as the socket takes it)",
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="answer timeout")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models:
        parser.error("--models names no model")
    if args.azure_deployment is not None and len(args.models) != 1:
        parser.error("with --azure-deployment, --models names the deployment's one model family")
    if args.pace < 0 or args.timeout <= 0:
        parser.error("--pace must be >= 0 and --timeout > 0")
    return args


def build_stt(args: argparse.Namespace, model: str) -> STT:
    """The STT a user would make for ``model``, with client commits (the check commits)."""
    if args.azure_deployment is not None:
        return STT.with_azure(
            azure_deployment=args.azure_deployment, model_family=model, turn_detection=None
        )
    return STT(model=model, base_url=args.base_url, turn_detection=None)


def estimate_cents(model: str, seconds: float) -> float | None:
    """Estimated price of sending ``seconds`` of audio through ``model``, in US cents."""
    usd = estimate_cost_usd(
        model,
        audio_seconds=seconds,
        input_tokens=int(seconds * AUDIO_TOKENS_PER_SECOND),
        output_tokens=OUTPUT_TOKENS,
    )
    return None if usd is None else usd * 100


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    assumption: str
    model: str
    outcome: Outcome


async def run_check(
    argv: Sequence[str] | None = None,
    *,
    write: Callable[[str], None] = print,
    ask: Callable[[str], str] | None = None,
) -> int:
    """Run the check; returns the exit status (0 held, 1 an assumption differs, 2 no run).

    ``write`` prints a line; ``ask`` asks before spending (default: ``input`` on a terminal,
    and no run without ``--yes`` elsewhere)."""
    try:
        args = parse_args(argv)
        targets, skipped = _targets(args)
    except SetupError as e:
        write(f"error: {e}")
        return 2
    pcm = sample_pcm()
    seconds = len(pcm) / PCM16.bytes_per_second
    if not _confirm(args, targets, skipped, seconds, write, ask):
        return 2
    out: Path = args.out or Path(time.strftime("openai-rt-check-%Y%m%d-%H%M%S"))
    rows: list[Row] = []
    async with aiohttp.ClientSession() as http:
        for family, target in targets:
            write(f"checking {target.model} ...")
            obs = await _observe(http, args, family, target, pcm, out)
            rows += [
                Row(f"{a.name} ({a.section})", target.model, a.judge(obs)) for a in ASSUMPTIONS
            ]
            rows += [
                Row(f"accepts {p.name} ({p.section})", target.model, judge_probe(p, obs))
                for p in PROBES
            ]
    write("")
    write(format_table(rows))
    counts = {s: sum(r.outcome.status == s for r in rows) for s in ("held", "differs")}
    write("")
    write(
        f"{counts['held']} held, {counts['differs']} differ, {len(rows) - sum(counts.values())} "
        f"not checked or not judged; traces in {out}/"
    )
    return 1 if counts["differs"] else 0


def _targets(args: argparse.Namespace) -> tuple[list[tuple[str, Target]], dict[str, str]]:
    if args.azure_deployment is None and not os.environ.get("OPENAI_API_KEY"):
        raise SetupError("set OPENAI_API_KEY (the check takes no key on its command line)")
    targets: list[tuple[str, Target]] = []
    skipped: dict[str, str] = {}
    for model in args.models:
        try:
            stt = build_stt(args, model)
        except ValueError as e:
            if args.azure_deployment is not None:
                raise SetupError(str(e)) from None  # Azure settings missing or wrong
            skipped[model] = str(e)  # the plugin refuses this model's configuration
            continue
        targets.append((model, Target.from_stt(stt)))
    if not targets:
        raise SetupError("no model to check: " + "; ".join(f"{m}: {e}" for m, e in skipped.items()))
    return targets, skipped


def _confirm(
    args: argparse.Namespace,
    targets: Sequence[tuple[str, Target]],
    skipped: dict[str, str],
    seconds: float,
    write: Callable[[str], None],
    ask: Callable[[str], str] | None,
) -> bool:
    host = urlsplit(targets[0][1].url).netloc
    write(f"openai_rt {__version__} live check against {host}: {len(targets)} model(s)")
    total = 0.0
    for family, target in targets:
        cents = estimate_cents(family, seconds)
        total += cents or 0.0
        price = "price unknown" if cents is None else f"about {cents:.3f} cents"
        write(f"  {target.model:<36} {seconds:.1f} s of audio, {price}")
    for model, why in skipped.items():
        write(f"  {model:<36} skipped: {why}")
    note = " (Azure prices differ)" if args.azure_deployment else ""
    write(f"estimated cost: about {total:.2f} cents{note}; option probes send no audio")
    if args.yes:
        return True
    if ask is None:
        if not sys.stdin.isatty():
            write("not a terminal: pass --yes to run without this question")
            return False
        ask = input
    return ask("run it? [y/N] ").strip().lower() in ("y", "yes")


async def _observe(
    http: aiohttp.ClientSession,
    args: argparse.Namespace,
    family: str,
    target: Target,
    pcm: bytes,
    out: Path,
) -> Observation:
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    header = {
        "model": target.model,
        "model_family": family if family != target.model else None,
        "recorded_by": f"livekit-plugins-openai-rt {__version__} check",
        "source": f"python -m livekit.plugins.openai_rt.check, {redact_url(target.url)}, {when}",
        "reconstructed": False,
    }
    stream = TraceRecorder({**header, "note": f"stream session: the sample ({SAMPLE_TEXT!r})"})
    await run_stream(
        http,
        target,
        pcm,
        stream,
        pace=args.pace,
        timeout=args.timeout,
        grace=min(GRACE_SECONDS, args.timeout / 5),
    )
    options = TraceRecorder({**header, "note": "options session: one session.update per probe"})
    await run_options(http, target, PROBES, options, timeout=args.timeout)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", target.model)
    stream.write(out / f"{name}.stream.jsonl")
    options.write(out / f"{name}.options.jsonl")
    return Observation(target.model, target.spec, _as_trace(stream), _as_trace(options))


def _as_trace(recorder: TraceRecorder) -> Trace:
    return parse_trace(recorder.lines())


def format_table(rows: Sequence[Row]) -> str:
    """The table: assumption, model, result, the server's words; by assumption, then model."""
    header = ("assumption", "model", "result", "the server's words")
    cells = [header] + [(r.assumption, r.model, r.outcome.status, r.outcome.words) for r in rows]
    order = {name: i for i, name in enumerate(dict.fromkeys(r.assumption for r in rows))}
    cells[1:] = sorted(cells[1:], key=lambda c: order[c[0]])
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    return "\n".join(
        "  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells
    ).rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m livekit.plugins.openai_rt.check``."""
    return asyncio.run(run_check(argv))
