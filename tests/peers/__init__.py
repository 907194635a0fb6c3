"""Real DICOM peers for tests: a recording pynetdicom SCP, Orthanc and the DCMTK tools.

A peer that is not installed skips the test on a developer's machine; under CI (the ``CI``
environment variable set to anything but ``""``, ``0``, ``false`` or ``no``) it fails it, so a
broken CI image cannot pass by skipping everything.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

# DCMTK and Orthanc otherwise wait for Nagle's algorithm, ~40 ms per DICOM message.
PEER_ENVIRONMENT = {"TCP_NODELAY": "1"}


def running_under_ci() -> bool:
    """Whether the ``CI`` environment variable asks for missing peers to fail the run."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def _search_path() -> str:
    """``PATH`` without this Python environment's own scripts.

    pynetdicom installs apps named like DCMTK's (storescu, findscu, movescu, echoscu,
    storescp), so in an activated virtual environment they would stand in for the peer.
    """
    own = (Path(sys.prefix) / "bin").resolve()
    folders = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(f for f in folders if f and Path(f).resolve() != own)


def find_peer(executable: str) -> str | None:
    """The full path of the peer ``executable``, or None if it is not installed."""
    return shutil.which(executable, path=_search_path())


def require_peer(executable: str) -> str:
    """The full path of ``executable``; skip the test (fail it under CI) if it is missing."""
    found = find_peer(executable)
    if found:
        return found
    message = f"{executable} is not installed (Debian packages orthanc, orthanc-dicomweb, dcmtk)"
    if running_under_ci():
        pytest.fail(f"{message}; CI must have every peer", pytrace=False)
    pytest.skip(message)
