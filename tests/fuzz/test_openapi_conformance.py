"""Schemathesis against a real relay process: every operation of `/api/openapi.json`, called
with the real credentials of a sending and a receiving site (and as the patient's phone, with
a CSRF cookie and header), with inputs that follow the document and inputs that break it. The
relay must never answer 5xx, and every answer must match the document: its status, its
content type and its schema.

Bounded so it takes a minute or two in CI: a fixed number of inputs per operation,
derandomized, loopback only (`FUZZ_PROFILE=long` for many more, see `ops/fuzz.sh`)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from relay_harness import RECEIVER, RelayProcess, register_sites
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fuzz.profiles import LONG, scaled
from transfer_codes import wire

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = scaled(8)  # per operation, generation mode and path variant
# What only a receiving site may do; the other operations are called as the sending site.
RECEIVING = {
    "POST " + wire.REDEMPTIONS,
    "POST " + wire.REDEMPTION_SALT,
    "POST " + wire.transfer_action("{transfer_id}", "receipt"),
    "GET " + wire.transfer_action("{transfer_id}", "objects") + "/{index}",
}
CSRF = "fuzz-csrf-token-0123456789"  # any usable value, sent as cookie and header


@dataclass
class Relay:
    process: RelayProcess
    sending: str = field(repr=False)  # a failing test's report shows no credential
    receiving: str = field(repr=False)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    data = tmp_path / "relay-data"
    sending, receiving = asyncio.run(register_sites(data))
    process = RelayProcess(data, tmp_path / "relay.log")
    process.start()
    try:
        yield Relay(process, sending, receiving)
    finally:
        process.stop()
    # Not a 5xx is checked on the answers; an error logged without one is caught here.
    assert "Traceback" not in (tmp_path / "relay.log").read_text()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment: loopback only
    return session


def _new_transfer(session: requests.Session, url: str, sending: str) -> str:
    answer = session.post(
        url + wire.TRANSFERS,
        json={"recipient": RECEIVER},
        headers={"Authorization": f"Bearer {sending}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    transfer_id: str = answer.json()["transfer_id"]
    return transfer_id


def test_every_operation_conforms_and_never_answers_5xx(relay: Relay) -> None:
    process = relay.process
    session = _session()
    document = session.get(process.url + "/api/openapi.json", timeout=30)
    assert document.status_code == 200
    schema = schemathesis.openapi.from_dict(document.json())
    calls: collections.Counter[tuple[str, int]] = collections.Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]

    for operation in operations:
        public = operation.definition.raw.get("security") == []
        callers: list[tuple[dict[str, str], dict[str, str]]]
        if public:  # the patient's phone: no credential, a CSRF cookie and header
            callers = [({wire.CSRF_TOKEN: CSRF}, {"tr_csrf": CSRF})]
        else:  # the site whose role the operation is for (another one is refused at once)
            receiving = operation.label in RECEIVING
            credential = relay.receiving if receiving else relay.sending
            callers = [({"Authorization": f"Bearer {credential}"}, {})]
        variants: list[dict[str, Any]] = [{}]
        if "{transfer_id}" in operation.path:
            # A transfer that exists (made fresh for this operation), so the calls reach past
            # the lookup into the handler's parsing and the transfer's rules.
            known = {
                "path_parameters": {
                    "transfer_id": _new_transfer(session, process.url, relay.sending)
                }
            }
            if operation.method.upper() == "GET" and operation.path.endswith("/manifest"):
                known["query"] = {"wait": "0"}  # a long poll would only spend the time budget
            variants.append(known)
        for headers, cookies in callers:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for fixed in variants:
                    _run(
                        operation,
                        mode,
                        fixed,
                        process.url,
                        session,
                        headers,
                        cookies,
                        calls,
                        failures,
                    )

    labels = {label for label, _ in calls}
    succeeded = {label for label, status in calls if status < 300}
    total = sum(calls.values())
    summary = "\n".join(f"{label} {status}: {n}" for (label, status), n in sorted(calls.items()))
    assert not failures, "\n\n".join(failures[:10]) + f"\n\n({len(failures)} failures)"
    # Not vacuous: every documented operation was called, many times, and many succeeded.
    assert len(operations) == sum(len(ops) for ops in document.json()["paths"].values())
    assert len(operations) >= 20, summary
    assert labels == {op.label for op in operations}, summary
    assert total >= (10_000 if LONG else 500), f"{total} calls\n{summary}"
    assert len(succeeded) >= 8, summary
    assert not any(status >= 500 for _, status in calls), summary


def _run(
    operation: Any,
    mode: GenerationMode,
    fixed: dict[str, Any],
    url: str,
    session: requests.Session,
    headers: dict[str, str],
    cookies: dict[str, str],
    calls: collections.Counter[tuple[str, int]],
    failures: list[str],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=not LONG,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode, **fixed))
    def call(case: Any) -> None:
        response = case.call(
            base_url=url, session=session, headers=headers, cookies=cookies, timeout=60
        )
        calls[(operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as e:  # its report masks the Authorization header
            failures.append(f"{operation.label} ({mode.value}):\n{e}")

    try:
        call()
    except Unsatisfiable:
        # An operation with nothing to break (no parameters, no body) has no negative inputs.
        assert mode is GenerationMode.NEGATIVE, operation.label
