"""The inbox's settings are checked at start-up, naming the one to fix."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sending_site.inbox.errors import InboxSettingInvalid
from sending_site.inbox.settings import InboxSettings, PacsNode

GOOD = InboxSettings(spool=Path("/spool"), pacs=PacsNode("PACS", "10.0.0.5", 104))


def test_the_defaults_are_valid() -> None:
    assert GOOD.validated() is GOOD
    assert InboxSettings(spool=Path("/spool")).validated().port == 11112


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ae_title": ""}, "ae_title"),
        ({"ae_title": "A" * 17}, "ae_title"),
        ({"ae_title": "BACK\\SLASH"}, "ae_title"),
        ({"ae_title": "   "}, "ae_title"),
        ({"port": 70000}, "port"),
        ({"pacs": PacsNode("PACS", "", 104)}, "pacs.host"),
        ({"pacs": PacsNode("PACS", "h", 0)}, "pacs.port"),
        ({"pacs": PacsNode("", "h", 104)}, "pacs.ae_title"),
        ({"max_pdu_bytes": 0}, "max_pdu_bytes"),
        ({"max_associations": 0}, "max_associations"),
        ({"max_instance_bytes": 10}, "max_instance_bytes"),
        ({"stable_after": float("nan")}, "stable_after_seconds"),
        ({"stable_after": -1.0}, "stable_after_seconds"),
        ({"network_timeout": 0.0}, "network_timeout_seconds"),
        ({"pacs_timeout": float("inf")}, "pacs_timeout_seconds"),
    ],
)
def test_an_invalid_setting_is_named(change: dict[str, object], named: str) -> None:
    with pytest.raises(InboxSettingInvalid, match=named.replace(".", r"\.")):
        replace(GOOD, **change).validated()  # type: ignore[arg-type]
