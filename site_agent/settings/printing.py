"""`--print-config`: a complete TOML configuration, every setting with its help as a comment,
generated from the declaration (so it cannot drift from it) and read back by `loading.load` as
exactly the settings it was printed from."""

from __future__ import annotations

import textwrap

from site_agent.settings.schema import describe

WIDTH = 96


def _comment(text: str, indent: str = "") -> list[str]:
    return [
        f"{indent}# {line}"
        for line in textwrap.wrap(text, WIDTH - len(indent) - 2, break_on_hyphens=False)
    ] or []


def render(settings: object, *, title: str, prefix: str, command: str) -> str:
    """The TOML text of `settings` (usually the defaults, or what --config and --set made)."""
    sample = f"{prefix}_CONSOLE_LISTEN"
    lines = _comment(title)
    lines += [
        "#",
        *_comment(
            f"Start with: {command} --config FILE. Every setting can also be given in the "
            f"environment as {prefix}_<SECTION>_<KEY> (e.g. {sample}) or on the command line as "
            "--set SECTION.KEY=VALUE; the command line wins over the environment, which wins "
            "over this file. Durations take a unit: 90s, 30m, 2h. An empty path means not set."
        ),
        "#",
        *_comment(
            "No secret is ever written here: settings ending in _file name the file that holds "
            "one (readable only by the agent's user)."
        ),
    ]
    for part in describe(type(settings)):
        lines += ["", f"[{part.name}]", *_comment(part.help)]
        current = getattr(settings, part.name)
        for s in part.settings:
            help_text = s.help + (" Required." if s.required else "")
            lines += [
                "",
                *_comment(help_text),
                f"{s.key} = {s.kind.to_toml(getattr(current, s.key))}",
            ]
    return "\n".join(lines) + "\n"
