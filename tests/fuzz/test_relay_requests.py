"""Fuzz what the relay parses from a request: upload headers and bodies (a piece of a sealed
object, a manifest record, an object's completion), the manifest's query, a download's
range, JSON bodies, and what the patient's phone posts (token, role, CSRF cookie, header and
origin). Sent to a real relay process over loopback; the property: never a 5xx, every refusal
a problem document, and no traceback in the relay's log.

`FUZZ_PROFILE=long` runs many more inputs (`ops/fuzz.sh`)."""

from __future__ import annotations

import asyncio
import collections
import json
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import example, given, settings
from hypothesis import strategies as st
from relay_harness import RECEIVER, RelayProcess, register_sites

from fuzz.profiles import FUZZ, scaled
from transfer_codes import wire

HTTP = settings(FUZZ, max_examples=scaled(60))
# What a header may hold on the wire (no line breaks); the relay must cope with the rest
# (and no leading space, which the client refuses to send).
HEADER_TEXT = st.text(alphabet=string.printable.strip() + " é", max_size=80).map(str.lstrip)
SEGMENT = st.text(alphabet=string.ascii_letters + string.digits + "-_.~%²٣", min_size=1)
CSRF = "fuzz-csrf-token-0123456789"


@dataclass
class Relay:
    process: RelayProcess
    log: Path
    sending: str = field(repr=False)  # a failing test's report shows no credential
    receiving: str = field(repr=False)
    session: requests.Session = field(default_factory=requests.Session)
    transfer_id: str = ""
    statuses: collections.Counter[tuple[str, int]] = field(default_factory=collections.Counter)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        response = self.session.request(method, self.process.url + path, timeout=60, **kwargs)
        route = path.replace(self.transfer_id, "{transfer_id}")
        self.statuses[(f"{method} {route.rsplit('/', 1)[0]}", response.status_code)] += 1
        return response

    def as_site(self, role: str) -> dict[str, str]:
        credential = self.sending if role == "sending" else self.receiving
        return {"Authorization": f"Bearer {credential}"}


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    root = tmp_path_factory.mktemp("fuzz-relay")
    sending, receiving = asyncio.run(register_sites(root / "data"))
    process = RelayProcess(root / "data", root / "relay.log")
    process.start()
    relay = Relay(process, root / "relay.log", sending, receiving)
    relay.session.trust_env = False  # no proxy from the environment: loopback only
    created = relay.call(
        "POST", wire.TRANSFERS, json={"recipient": RECEIVER}, headers=relay.as_site("sending")
    )
    assert created.status_code == 201, created.text
    relay.transfer_id = created.json()["transfer_id"]
    try:
        yield relay
    finally:
        process.stop()
        relay.session.close()
    assert "Traceback" not in relay.log.read_text()


def answered_well(response: requests.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["status"] == response.status_code


def _json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=10,
    )


def bodies(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Request bodies: random bytes, any JSON, and `valid` with fields replaced or dropped."""
    changed = st.dictionaries(st.sampled_from(sorted(valid)), _json_values(), max_size=3)
    return st.one_of(
        st.binary(max_size=200),
        _json_values().map(lambda v: json.dumps(v).encode()),
        changed.map(lambda c: json.dumps({**valid, **c}).encode()),
        st.just(b'{"token": "\\ud800"}'),
    )


@HTTP
@given(HEADER_TEXT, st.none() | HEADER_TEXT, st.none() | HEADER_TEXT, SEGMENT, st.binary())
@example("0", "3", "ab" * 32, "0", b"abc")
@example("99999999999999999999999", "1" * 19, "0" * 64, "0", b"")
def test_object_upload(
    relay: Relay, offset: str, length: str | None, digest: str | None, index: str, body: bytes
) -> None:
    headers = relay.as_site("sending") | {wire.UPLOAD_OFFSET: offset}
    if length is not None:
        headers[wire.UPLOAD_LENGTH] = length
    if digest is not None:
        headers[wire.UPLOAD_SHA256] = digest
    path = wire.transfer_action(relay.transfer_id, "objects") + f"/{index}"
    answered_well(relay.call("PATCH", path, headers=headers, data=body))


@HTTP
@given(
    SEGMENT, st.none() | HEADER_TEXT, st.binary(max_size=300), bodies({"size": 3, "sha256": "a"})
)
def test_manifest_record_and_completion(
    relay: Relay, seq: str, final: str | None, record: bytes, completion: bytes
) -> None:
    headers = relay.as_site("sending")
    if final is not None:
        headers[wire.MANIFEST_FINAL] = final
    path = wire.transfer_action(relay.transfer_id, "manifest") + f"/{seq}"
    answered_well(relay.call("PUT", path, headers=headers, data=record))
    path = wire.transfer_action(relay.transfer_id, "objects") + f"/{seq}/complete"
    answered_well(relay.call("POST", path, headers=relay.as_site("sending"), data=completion))


@HTTP
@given(bodies({"objects": [{"index": 0, "size": 3, "sha256": "a" * 64}]}), st.binary(max_size=8))
@example(b"[" * 16 * 1024, b"")  # the longest list the relay reads, nested past Python's depth
def test_batch_upload_listing(relay: Relay, listing: bytes, rest: bytes) -> None:
    body = len(listing).to_bytes(4, "big") + listing + rest
    path = wire.transfer_action(relay.transfer_id, "objects")
    answered_well(relay.call("POST", path, headers=relay.as_site("sending"), data=body))


WAITS = st.sampled_from(["0", "-1", "0.01", "nan", "-inf", "1e-9", "x", "", "٣", "0x1"])


@HTTP
@given(st.none() | HEADER_TEXT, WAITS, st.none() | HEADER_TEXT, st.sampled_from(["0", "1", "x"]))
@example("99999999999999999999999", "0", "bytes=99999999999999999999-", "0")
def test_manifest_query_and_download_range(
    relay: Relay, start: str | None, wait: str, range_: str | None, index: str
) -> None:
    query = {"wait": wait} | ({} if start is None else {"from": start})
    path = wire.transfer_action(relay.transfer_id, "manifest")
    for role in ("sending", "receiving"):
        answered_well(relay.call("GET", path, params=query, headers=relay.as_site(role)))
    headers = relay.as_site("receiving") | ({} if range_ is None else {"Range": range_})
    path = wire.transfer_action(relay.transfer_id, "objects") + f"/{index}"
    answered_well(relay.call("GET", path, headers=headers))


@HTTP
@given(
    st.sampled_from(
        [wire.PHONE_STATUS, wire.PHONE_REVOKE, wire.PHONE_DECLINE, wire.AUTHORIZATIONS]
    ),
    bodies({"token": "A" * 48, "role": "patient", "authorizer_role": "family"}),
    st.none() | HEADER_TEXT,
    st.none() | HEADER_TEXT,
    st.none() | HEADER_TEXT,
)
@example(wire.PHONE_STATUS, b'{"token": "' + b"A" * 48 + b'"}', CSRF, CSRF, None)
def test_phone_posts(
    relay: Relay,
    path: str,
    body: bytes,
    header: str | None,
    cookie: str | None,
    origin: str | None,
) -> None:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[wire.CSRF_TOKEN] = header
    if cookie is not None:
        headers["Cookie"] = f"tr_csrf={cookie}"
    if origin is not None:
        headers["Origin"] = origin
    answered_well(relay.call("POST", path, headers=headers, data=body))
    # The same body past a CSRF check that passes, so the body itself is parsed.
    headers |= {wire.CSRF_TOKEN: CSRF, "Cookie": f"tr_csrf={CSRF}"}
    headers.pop("Origin", None)
    answered_well(relay.call("POST", path, headers=headers, data=body))


JSON_OPERATIONS = [
    ("POST", wire.TRANSFERS, "sending", {"recipient": RECEIVER, "expires_in": 3600}),
    ("PUT", "locks", "sending", {"code": {}, "capability": {}, "authorization_token": "A"}),
    ("POST", "reissue", "sending", {"code": {}, "capability": {}}),
    ("POST", "break-glass", "sending", {"sealed_reason": "AAAA"}),
    ("PUT", "phone", "sending", {"summary": "AAAA", "code": "AAAA"}),
    ("POST", "receipt", "receiving", {"instances": 1, "bytes": 1, "destination": "pacs"}),
    ("POST", wire.REDEMPTION_SALT, "receiving", {"locator": 1}),
    ("POST", wire.REDEMPTIONS, "receiving", {"locator": 1, "proof": "A" * 43 + "="}),
]


@HTTP
@given(st.data())
def test_json_bodies(relay: Relay, data: st.DataObject) -> None:
    method, target, role, valid = data.draw(st.sampled_from(JSON_OPERATIONS))
    body = data.draw(bodies(valid))
    path = target if target.startswith("/") else wire.transfer_action(relay.transfer_id, target)
    answered_well(relay.call(method, path, headers=relay.as_site(role), data=body))


def test_the_inputs_reached_the_parsers(relay: Relay) -> None:
    """Runs after the fuzz tests of this module (file order): they were not vacuous. Their
    inputs got past authentication and the CSRF check into the parsers (400s), and some were
    good enough to be taken (2xx)."""
    statuses: collections.Counter[int] = collections.Counter()
    for (_, status), n in relay.statuses.items():
        statuses[status] += n
    assert statuses[400] >= 50, statuses
    assert sum(n for status, n in statuses.items() if status < 300) >= 5, statuses
