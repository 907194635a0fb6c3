"""Every error a person can read is one plain line: each package's `errors` module (found by
name, so a new package's or subpackage's is covered too) builds its default text with
`transfer_codes.messages.from_docstring`, and no docstring's wrapping or indent leaks into it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from types import ModuleType

import pytest

from transfer_codes.messages import from_docstring

PACKAGES = ("transfer_codes", "relay", "site_agent", "sending_site", "receiving_site")


def _errors_modules() -> list[ModuleType]:
    found = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if info.name.rsplit(".", 1)[-1] == "errors":
                found.append(importlib.import_module(info.name))
    return found


def _exception_classes() -> list[type[BaseException]]:
    return [
        cls
        for module in _errors_modules()
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == module.__name__
    ]


def _builds_without_arguments(cls: type[BaseException]) -> bool:
    parameters = inspect.signature(cls).parameters.values()
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters
    )


CLASSES = _exception_classes()
IDS = [f"{cls.__module__}.{cls.__qualname__}" for cls in CLASSES]


def _assert_one_plain_line(text: str) -> None:
    assert text.strip()
    assert not re.search(r"\n\s", text)  # a docstring's line break and indent
    assert "\n" not in text
    assert "\r" not in text


def test_every_package_errors_module_is_found() -> None:
    names = {module.__name__ for module in _errors_modules()}
    assert {f"{package}.errors" for package in PACKAGES} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=IDS)
def test_docstring_text_is_one_plain_line(cls: type[BaseException]) -> None:
    assert cls.__doc__, "the docstring is the sentence a person sees"
    _assert_one_plain_line(from_docstring(cls))


@pytest.mark.parametrize(
    "cls", [c for c in CLASSES if _builds_without_arguments(c)], ids=lambda c: c.__qualname__
)
def test_default_message_is_the_docstring_on_one_line(cls: type[BaseException]) -> None:
    message = str(cls())
    _assert_one_plain_line(message)
    assert message == from_docstring(cls)
