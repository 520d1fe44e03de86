"""A live check of the service in one command: ``python -m livekit.plugins.openai_rt.check``.

With ``OPENAI_API_KEY`` (or Azure settings) it streams a bundled 3.8 s sample through each chosen
model, records every session's raw traffic to JSONL with the key and the audio redacted
(:mod:`.trace`), checks every assumption the plugin relies on (:mod:`.assumptions`, one list,
each with the section of docs/protocol.md it checks) and prints one table: assumption, model,
held or differs, with the server's words. The exit status is 1 when an assumption differs. The
estimated cost is printed, and confirmed, before anything is sent; ``--base-url`` points it at
another server, such as the bundled emulator.

A recorded trace replays through the session core (:mod:`.replay`), so a trace attached to a bug
report becomes a test.
"""

from .cli import main, run_check

__all__ = ["main", "run_check"]
