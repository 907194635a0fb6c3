"""Reading a state machine's mermaid drawing in docs/, so a test can hold it to the code."""

from __future__ import annotations

import re
from pathlib import Path

START = "[*]"
ARROW = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)\s*(?::\s*(.*?))?\s*$")


def drawn_transitions(doc: Path) -> tuple[set[tuple[str, str, str]], set[str], set[str]]:
    """(transitions as (from, to, event), start states, end states) from the mermaid block of
    `doc`."""
    text = doc.read_text(encoding="utf-8")
    block = re.search(r"```mermaid\n(.*?)```", text, re.DOTALL)
    assert block is not None, f"{doc.name} has no mermaid block"
    lines = block.group(1).splitlines()
    assert lines[0].strip().startswith("stateDiagram")
    transitions: set[tuple[str, str, str]] = set()
    starts: set[str] = set()
    ends: set[str] = set()
    for line in lines[1:]:
        if not line.strip() or line.strip().startswith("%%"):
            continue
        match = ARROW.match(line)
        assert match is not None, f"cannot read this line of the drawing: {line!r}"
        source, target, label = match.groups()
        if source == START:
            starts.add(target)
        elif target == START:
            ends.add(source)
        else:
            assert label, f"arrow without an event: {line!r}"
            transitions.add((source, target, label))
    return transitions, starts, ends
