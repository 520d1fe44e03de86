"""The layering the architecture promises: the session cores (transcription and translation)
and the URL building are sans-I/O, so they can be driven without a socket or an event loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import livekit.plugins.openai_rt as package

PACKAGE_DIR = Path(package.__file__).parent
IO_MODULES = ("asyncio", "aiohttp", "socket", "ssl", "livekit.rtc", "livekit.agents")
"""Top-level modules that do I/O, run an event loop, or bring the framework in."""


def _imports(module: str) -> tuple[set[str], set[str]]:
    """The package modules ``module`` imports (relative imports) and the other modules."""
    tree = ast.parse((PACKAGE_DIR / f"{module}.py").read_text())
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            others.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                others.add(node.module)
                others.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif node.module:
                ours.add(node.module)
            else:
                ours.update(alias.name for alias in node.names)
    return ours, others


def _closure(root: str) -> dict[str, set[str]]:
    """Every package module ``root`` reaches through its imports -> its non-package imports."""
    seen: dict[str, set[str]] = {}
    todo = [root]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        ours, others = _imports(module)
        seen[module] = others
        todo += sorted(ours)
    return seen


@pytest.mark.parametrize("root", ["session", "translation_session", "urls", "errors"])
def test_the_protocol_core_imports_nothing_that_does_io(root: str) -> None:
    reached = _closure(root)
    offending = {
        module: sorted(
            name
            for name in others
            if any(name == m or name.startswith(f"{m}.") for m in IO_MODULES)
        )
        for module, others in reached.items()
    }
    assert {m: names for m, names in offending.items() if names} == {}
    assert len(reached) > 1 or root == "errors"  # the walk followed the package's imports


def test_the_walk_sees_io_where_there_is_some() -> None:
    """The check above can fail: the adapter's closure does reach the event loop and aiohttp."""
    reached = _closure("adapter")
    flat = {name for others in reached.values() for name in others}
    assert "asyncio" in flat and "aiohttp" in flat


def test_options_import_no_transport() -> None:
    """Options (validation at construction) reach none of the package's I/O modules and no
    event loop or socket library; of the framework, only its value types."""
    reached = _closure("options")
    assert not {"connection", "adapter", "stream", "prewarm", "stt"} & set(reached)
    flat = {name for others in reached.values() for name in others}
    assert not {n for n in flat if n.split(".")[0] in {"asyncio", "aiohttp", "socket", "ssl"}}
    assert {n for n in flat if n.startswith("livekit.")} <= {
        "livekit.agents",
        "livekit.agents.NotGivenOr",
        "livekit.agents.utils",
        "livekit.agents.utils.is_given",
        "livekit.agents.LanguageCode",
    }
