"""Shared fixtures: the real DICOM peers and a synthetic study."""

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from peers import require_peer
from peers.orthanc import ORTHANC, OrthancServer
from peers.s3 import MotoServer, S3Bucket
from peers.storage_scp import RecordingStorageSCP

from sending_site.synthetic import make_ct_study

CHECKOUT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """The `trauma-relay` the tests start (agents, relays, the CLI) is the console script of
    this interpreter's environment, whose editable install may name another checkout (a git
    worktree tested with the main checkout's virtualenv): it would run that checkout's code
    while the tests import this one's. This checkout goes first on their import path too."""
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([str(CHECKOUT), *kept])


@pytest.fixture
def storage_scp() -> Iterator[RecordingStorageSCP]:
    """A running Storage SCP that accepts everything and records what it receives."""
    with RecordingStorageSCP() as scp:
        yield scp


@pytest.fixture
def orthanc_factory(tmp_path: Path) -> Iterator[Callable[..., OrthancServer]]:
    """Start Orthanc servers (``OrthancServer`` keyword arguments); all stop after the test."""
    with ExitStack() as stack:
        count = 0

        def start(**options: Any) -> OrthancServer:
            nonlocal count
            require_peer(ORTHANC)
            count += 1
            server = OrthancServer(tmp_path / f"orthanc-{count}", **options)
            return stack.enter_context(server)

        yield start


@pytest.fixture
def orthanc(orthanc_factory: Callable[..., OrthancServer]) -> OrthancServer:
    """A running Orthanc that accepts every transfer syntax."""
    return orthanc_factory()


@pytest.fixture
def synthetic_study(tmp_path: Path) -> list[Path]:
    """A 10-slice synthetic CT study (seed 0) in its own folder, in instance order."""
    return make_ct_study(tmp_path / "study", 10)


@pytest.fixture(scope="session")
def s3_bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Bucket]:
    """One local S3-API server (moto) and bucket for the session; tests keep apart by prefix."""
    with MotoServer(tmp_path_factory.mktemp("moto")) as bucket:
        yield bucket
