"""Typed settings for the site agents, one root object per agent (like hypercorn's `Config`):
declared as frozen dataclasses (`schema`), with kinds of value that carry their units and
checks (`kinds`), loaded from TOML, the environment and `--set` and validated at start-up,
failing closed (`loading`), printed back as commented TOML (`printing`), and reached from the
command line (`arguments`). The sections both agents have are in `sections`."""

from site_agent.settings.kinds import (
    DAYS,
    HOURS,
    MINUTES,
    SECONDS,
    AETitle,
    AETitles,
    Count,
    Duration,
    HostPort,
    Port,
    Url,
)
from site_agent.settings.loading import checked, load, replaced
from site_agent.settings.printing import render
from site_agent.settings.schema import section, setting

__all__ = [
    "DAYS",
    "HOURS",
    "MINUTES",
    "SECONDS",
    "AETitle",
    "AETitles",
    "Count",
    "Duration",
    "HostPort",
    "Port",
    "Url",
    "checked",
    "load",
    "render",
    "replaced",
    "section",
    "setting",
]
