"""Micro-benchmark: sealed-object framing overhead against raw AES-256-GCM.

Run: ``.venv/bin/python ops/bench_sealing.py [--mib 64] [--chunk-kib 64] [--piece-kib 1024]``

In one run, over the same random payload:

* baseline: raw AES-256-GCM of every chunk (same chunk size) plus SHA-256 of the plaintext,
  which is the least any sender must do;
* sealing: ``ObjectSealer`` fed in pieces (as a sender reading a file would), hashing the
  plaintext with SHA-256 as it seals (``plain_hash``, as the sender does for the manifest);
* opening: ``ObjectOpener`` fed the sealed bytes in the same pieces; also compared with raw
  AES-256-GCM decryption of the same chunks, the like-for-like baseline for opening (which
  does no SHA-256 itself; a receiver hashes separately, in ``ManifestReader.verify_object``).

Every output is handed to a sink that drops it, as a sender or receiver streaming to a socket or
file would, and the same for all three: retaining 64 MiB of fresh output costs page faults that
would dwarf the framing being measured. Each figure is the best of ``--repeat`` runs. Prints
MB/s (10**6 plaintext bytes per second) and the ratios sealing/baseline and opening/baseline
(1.0 = no overhead; opening/baseline is above 1 because opening does no SHA-256).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Runs from a plain checkout too, without the package being installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from transfer_codes.keys import new_data_key, object_key
from transfer_codes.sealed import ObjectOpener, ObjectSealer, seal_object
from transfer_codes.tokens import new_transfer_id


def best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(mib: int, chunk_kib: int, piece_kib: int, repeat: int) -> dict[str, float]:
    """Best seconds of each: `baseline`, `seal`, `open`, `raw_open`; and `size` in bytes."""
    size: int = mib * 1024 * 1024
    chunk: int = chunk_kib * 1024
    piece: int = piece_kib * 1024
    payload = os.urandom(size)
    view = memoryview(payload)
    data_key = new_data_key()
    transfer_id = new_transfer_id()
    header = b"\x00" * 38  # same associated-data length as a sealed-object header

    def sink(data: bytes) -> None:
        del data

    def baseline() -> None:
        aead = AESGCM(data_key)
        digest = hashlib.sha256()
        for counter, offset in enumerate(range(0, size, chunk)):
            part = view[offset : offset + chunk]
            digest.update(part)
            nonce = b"\x00\x00\x00" + counter.to_bytes(8, "big") + b"\x00"
            sink(aead.encrypt(nonce, part, header))
        digest.digest()

    def seal() -> None:
        digest = hashlib.sha256()
        sealer = ObjectSealer(data_key, transfer_id, 0, chunk, plain_hash=digest)
        for offset in range(0, size, piece):
            sink(sealer.feed(view[offset : offset + piece]))
        sink(sealer.finish())
        digest.digest()

    sealed = seal_object(data_key, transfer_id, 0, payload, chunk)
    sealed_view = memoryview(sealed)
    sealed_pieces = [sealed_view[o : o + piece] for o in range(0, len(sealed), piece)]

    def open_() -> None:
        opener = ObjectOpener(data_key, transfer_id, 0)
        for part in sealed_pieces:
            sink(opener.feed(part))
        sink(opener.finish())

    def raw_open() -> None:
        aead = AESGCM(object_key(data_key, transfer_id, 0))
        record = chunk + 16
        for counter, offset in enumerate(range(38, len(sealed), record)):
            final = offset + record >= len(sealed)
            nonce = b"\x00\x00\x00" + counter.to_bytes(8, "big") + bytes([final])
            sink(aead.decrypt(nonce, sealed_view[offset : offset + record], sealed[:38]))

    opener = ObjectOpener(data_key, transfer_id, 0)
    opened = b"".join([opener.feed(part) for part in sealed_pieces]) + opener.finish()
    if opened != payload:
        raise SystemExit("round trip failed")
    del opened

    return {
        "size": size,
        "baseline": best_seconds(baseline, repeat),
        "seal": best_seconds(seal, repeat),
        "open": best_seconds(open_, repeat),
        "raw_open": best_seconds(raw_open, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="payload size in MiB")
    parser.add_argument("--chunk-kib", type=int, default=64, help="chunk size in KiB")
    parser.add_argument("--piece-kib", type=int, default=1024, help="feed() piece size in KiB")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    args = parser.parse_args()
    seconds = measure(args.mib, args.chunk_kib, args.piece_kib, args.repeat)
    size = seconds["size"]
    baseline_s, seal_s = seconds["baseline"], seconds["seal"]
    open_s, raw_open_s = seconds["open"], seconds["raw_open"]

    def rate(seconds: float) -> float:
        return size / seconds / 1e6

    print(
        f"payload {args.mib} MiB, chunk {args.chunk_kib} KiB, feed piece {args.piece_kib} KiB, "
        f"best of {args.repeat}"
    )
    print(f"baseline (AES-256-GCM + SHA-256): {rate(baseline_s):8.1f} MB/s")
    print(f"sealing  (ObjectSealer + SHA-256): {rate(seal_s):8.1f} MB/s")
    print(f"opening  (ObjectOpener):           {rate(open_s):8.1f} MB/s")
    print(f"raw AES-256-GCM decryption:        {rate(raw_open_s):8.1f} MB/s")
    print(f"sealing/baseline: {baseline_s / seal_s:.2f}")
    print(f"opening/baseline: {baseline_s / open_s:.2f}")
    print(f"opening/raw decryption: {raw_open_s / open_s:.2f}")


if __name__ == "__main__":
    main()
