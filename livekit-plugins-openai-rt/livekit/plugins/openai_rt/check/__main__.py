"""``python -m livekit.plugins.openai_rt.check``: see :mod:`livekit.plugins.openai_rt.check`."""

from .cli import main

raise SystemExit(main())
