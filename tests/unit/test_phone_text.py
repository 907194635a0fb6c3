"""The phone page's words (relay/pages/authorize.text.json): English and Spanish say the same
things with the same placeholders, and every key the page and its script use is there."""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

import pytest

from transfer_codes.phone import BODY_REGIONS
from transfer_codes.wire import Problem, TransferState

PAGES = resources.files("relay.pages")
TEXT: dict[str, dict[str, Any]] = json.loads(
    (PAGES / "authorize.text.json").read_text(encoding="utf-8")
)
HTML = (PAGES / "authorize.html").read_text(encoding="utf-8")
SCRIPT = (PAGES / "authorize.js").read_text(encoding="utf-8")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _placeholders(value: object) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(str(text))}


def _script_list(name: str) -> list[str]:
    """The strings of `const NAME = [...]`, or the keys of `const NAME = {...}`, in the script."""
    match = re.search(rf"const {name} = ([\[{{].*?[\]}}]);", SCRIPT, re.DOTALL)
    assert match is not None, name
    body = match.group(1)
    if body.startswith("["):
        return re.findall(r'"([^"]+)"', body)
    return re.findall(r"^\s*(\w+):", body, re.MULTILINE)


def test_both_languages_have_the_same_keys_and_placeholders() -> None:
    assert set(TEXT) == {"en", "es"}
    assert set(TEXT["en"]) == set(TEXT["es"])
    for name, english in TEXT["en"].items():
        spanish = TEXT["es"][name]
        assert type(english) is type(spanish), name
        if isinstance(english, dict):
            assert set(english) == set(spanish) == {"one", "other"}, name
        assert _placeholders(english) == _placeholders(spanish), name


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_switch_names_the_other_language(language: str) -> None:
    other = TEXT[language]["language.other"]
    assert other in TEXT
    assert other != language


def test_every_key_the_page_uses_is_there() -> None:
    used = set(re.findall(r'data-i18n="([^"]+)"', HTML))
    used |= set(re.findall(r'key: "([^"]+)"', SCRIPT))
    used |= {f"state.{state}" for state in _script_list("STATES")}
    used |= {f"problem.{code}" for code in _script_list("PROBLEMS")}
    used |= {f"relation.{kind}" for kind in _script_list("RELATIONSHIPS")}
    used |= {f"relationship.{kind}" for kind in _script_list("RELATIONSHIPS")}
    used |= {f"error.{field}" for field in _script_list("FIELDS")}
    used |= {f"region.{region}" for region in BODY_REGIONS}
    assert len(used) > 60
    assert used - set(TEXT["en"]) == set()


def test_the_script_knows_the_relay_s_words() -> None:
    assert set(_script_list("STATES")) == {state.value for state in TransferState}
    assert set(_script_list("PROBLEMS")) - {"offline"} <= {problem.value for problem in Problem}
