"""Fixtures for the end-to-end tests: a real relay process with two registered sites."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import E2ERelay


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ERelay]:
    """One `trauma-relay relay` process shared by a test module (each test makes its own
    transfers, so they do not see each other's)."""
    running = E2ERelay(tmp_path_factory.mktemp("relay")).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def fresh_relay(tmp_path: Path) -> Iterator[E2ERelay]:
    """A relay process of its own, for tests that inspect or break the whole data directory."""
    running = E2ERelay(tmp_path / "relay").start()
    try:
        yield running
    finally:
        running.stop()
