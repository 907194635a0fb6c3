"""DCMTK's command-line SCUs (storescu, echoscu, findscu) as a PACS or modality would run them.

Each helper returns the ``CompletedProcess`` (text output, not checked) so a test can assert
on the exit status and messages. A missing tool skips the test, or fails it under CI.
"""

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import PEER_ENVIRONMENT, require_peer

# Bounded waits, so that a silent peer fails the test instead of hanging it (seconds).
_NETWORK_TIMEOUTS = ("-to", "10", "-ta", "10", "-td", "60")
PROCESS_TIMEOUT = 300.0  # seconds for a whole run

# storescu proposes the uncompressed syntaxes only, unless told one compressed syntax to
# propose as well (one per run). It cannot transcode compressed pixel data, so a compressed
# file is sent only in its own syntax, and only when that syntax is proposed and accepted.
_PROPOSE_OPTIONS = {
    "1.2.840.10008.1.2": "-xi",  # Implicit VR Little Endian only
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.1.99": "-xd",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.4.50": "-xy",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": "-xx",  # JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.70": "-xs",  # JPEG Lossless, First-Order Prediction (SV1)
    "1.2.840.10008.1.2.4.80": "-xt",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "-xu",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": "-xv",  # JPEG 2000 Lossless Only
    "1.2.840.10008.1.2.4.91": "-xw",  # JPEG 2000
    "1.2.840.10008.1.2.5": "-xr",  # RLE Lossless
}


def propose_option(transfer_syntax: str) -> str:
    """The storescu option that proposes ``transfer_syntax`` (and the uncompressed ones)."""
    try:
        return _PROPOSE_OPTIONS[transfer_syntax]
    except KeyError:
        raise ValueError(f"storescu has no option to propose {transfer_syntax}") from None


def storescu(
    port: int,
    files: Sequence[Path],
    *,
    host: str = "127.0.0.1",
    called_ae_title: str = "ANY-SCP",
    calling_ae_title: str = "STORESCU",
    propose: str | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """C-STORE ``files`` (files or folders, searched recursively) in one association.

    storescu proposes the SOP classes of the files (``-R``; its fixed default list misses
    some, e.g. Segmentation) with the uncompressed transfer syntaxes, plus the syntax
    ``propose`` (a transfer syntax UID) if given. A compressed file goes only in its own
    syntax, so it fails unless that syntax is proposed and accepted. With ``-nh`` in
    ``extra_args`` storescu carries on after a failed store, and then exits 0 regardless.

    storescu is not byte-transparent: it re-encodes the data set, writing sequences with
    explicit lengths, recomputing group lengths and dropping trailing padding. Only files
    already encoded that way (such as ``sending_site.synthetic``'s) arrive byte for byte.
    """
    args = ["-R", "-aet", calling_ae_title, "-aec", called_ae_title, *_NETWORK_TIMEOUTS]
    if propose is not None:
        args.append(propose_option(propose))
    if any(path.is_dir() for path in files):
        args += ["+sd", "+r"]
    return _run("storescu", [*args, *extra_args, host, str(port), *map(str, files)])


def echoscu(
    port: int,
    *,
    host: str = "127.0.0.1",
    called_ae_title: str = "ANY-SCP",
    calling_ae_title: str = "ECHOSCU",
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """C-ECHO (verification); exit status 0 when the peer answers."""
    args = ["-aet", calling_ae_title, "-aec", called_ae_title, *_NETWORK_TIMEOUTS]
    return _run("echoscu", [*args, *extra_args, host, str(port)])


def findscu(
    port: int,
    keys: Mapping[str, str],
    *,
    host: str = "127.0.0.1",
    model: str = "-S",
    called_ae_title: str = "ANY-SCP",
    calling_ae_title: str = "FINDSCU",
    output_directory: Path | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """C-FIND with ``keys`` (keyword to value, ``""`` to ask for a return key).

    ``model`` is ``-S`` (study root), ``-P`` (patient root) or ``-W`` (worklist). With
    ``output_directory`` each response is written there as ``rsp0001.dcm``, ``rsp0002.dcm``...
    """
    args = [model, "-aet", calling_ae_title, "-aec", called_ae_title, *_NETWORK_TIMEOUTS]
    for keyword, value in keys.items():
        args += ["-k", f"{keyword}={value}"]
    if output_directory is not None:
        args += ["-X", "-od", str(output_directory)]
    return _run("findscu", [*args, *extra_args, host, str(port)])


def _run(tool: str, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    executable = require_peer(tool)
    return subprocess.run(
        [executable, *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=PROCESS_TIMEOUT,
        env={**os.environ, **PEER_ENVIRONMENT},
        check=False,
    )
