"""Acceptance: a study the ER's PACS sends to the agent's DICOM inbox travels on through the
one push pipeline: DCMTK storescu -> `trauma-relay sender inbox` -> the spooled files handed
to `trauma-relay push` -> the relay -> `trauma-relay redeem` into Orthanc, unchanged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydicom
import pytest
from inbox_harness import make_multi_series_study, running_inbox
from peers.dcmtk import storescu
from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, assert_identical_in_orthanc, pacs_address
from sending_site.inbox.handoff import spooled_study

pytestmark = pytest.mark.peers


def test_a_study_received_by_the_inbox_is_pushed_and_redeemed_into_the_pacs(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    study = make_multi_series_study(tmp_path / "study", seed=6161)
    sent = [path for files in study.values() for path in files]
    study_uid = str(pydicom.dcmread(sent[0], stop_before_pixels=True).StudyInstanceUID)
    for workdir in ("er", "tc"):
        (tmp_path / workdir).mkdir()
    with running_inbox(tmp_path / "agent") as agent:
        run = storescu(agent.port, [tmp_path / "study"], called_ae_title=agent.ae_title)
        assert run.returncode == 0, run.stderr
        spooled = asyncio.run(spooled_study(agent.spool, study_uid))
        assert len(spooled) == len(sent)
        pushed = relay.push(spooled, workdir=tmp_path / "er").ok().json()
    assert pushed["instances"] == len(sent)
    assert pushed["skipped"] == []
    relay.authorize(pushed)
    redeemed = (
        relay.redeem(pushed["code"], workdir=tmp_path / "tc", pacs=pacs_address(orthanc))
        .ok()
        .json()
    )
    assert redeemed["instances"] == len(sent)
    assert_identical_in_orthanc(orthanc, sent)  # same UIDs, same data set bytes
