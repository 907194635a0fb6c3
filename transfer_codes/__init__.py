"""Codes, keys and formats for end-to-end encrypted imaging transfers (format version 1).

Pure: no files, no network, no clocks; randomness only from ``secrets``. Modules:

- ``base32``: Crockford base32 text encoding.
- ``tokens``: transfer ids and bearer tokens.
- ``codes``: the 16-symbol redemption code with its check symbol.
- ``capability`` and ``qr``: the full-strength QR capability and its rendering.
- ``keys``: the key hierarchy, code stretching and key locks.
- ``sealed``: the chunked AEAD format of each transferred object.
- ``manifest``: the encrypted list of objects in a transfer.
- ``notes``: small sealed JSON documents (the one sealer/opener pair) and transfer notes.
- ``phone``: the patient's authorization link and the notes sealed for the phone.
- ``wire``: the relay's wire vocabulary and the base64 text form of bytes.
- ``messages``: the one rule for user-facing error text.
- ``errors``: every error raised here, under ``TransferCodeError``.

``docs/format.md`` describes every format byte by byte.
"""
