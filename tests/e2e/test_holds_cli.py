"""Acceptance, at the command line: `trauma-relay receiver holds` lists what `redeem` held on
this machine, each with its reason, both sides and the exact command for each choice (the
same redemption the console runs); a listed command does what it says, and `holds discard`
removes a held study, recorded in the audit log as the operating-system user."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, pacs_address, run_cli, sop_instance_uid
from sending_site.synthetic import make_ct_study


def test_the_queue_at_the_command_line(
    relay: E2ERelay, orthanc: OrthancServer, tmp_path: Path
) -> None:
    for path in make_ct_study(tmp_path / "other", 1, seed=183, patient_name="ROE^RICHARD"):
        orthanc.post_json("/instances", path.read_bytes(), "application/dicom")
    state = tmp_path / "tc-state"
    held: dict[str, list[Path]] = {}
    for seed in (184, 185):  # two transfers of DOE^JANE, ER-12345: held, as the PACS has ROE
        files = make_ct_study(tmp_path / f"study-{seed}", 2, seed=seed)
        pushed = relay.pushed_and_authorized(files[0].parent, tmp_path)
        relay.redeem(pushed["code"], workdir=tmp_path, pacs=pacs_address(orthanc)).failed()
        held[pushed["transfer_id"]] = files
    first, second = held
    settings = ["--set", f"state.folder={state}", "--set", f"relay.url={relay.url}"]

    listed = run_cli(["receiver", "holds", *settings], cwd=tmp_path).ok()

    out = listed.stdout
    assert f"{first}: The PACS holds this patient ID for someone else." in out
    assert f"{second}: The PACS holds this patient ID for someone else." in out
    assert "The PACS already has patient ID ER-12345 under a different name." in out
    assert "ROE, RICHARD" in out
    commands = {
        line.split(": ", 1)[0].strip(): shlex.split(line.split(": ", 1)[1])
        for line in out.split(f"{second}:")[0].splitlines()
        if line.startswith("  ") and ": trauma-relay " in line
    }
    assert list(commands) == [
        "confirm local record",
        "other record",
        "save to folder",
        "store anyway",
        "discard",
    ]
    confirm = commands["confirm local record"]
    assert confirm[:4] == ["trauma-relay", "redeem", "--resume", first]
    assert "--confirm-local-record" in confirm

    run_cli(confirm[1:], cwd=tmp_path, credential=relay.receiver_credential).ok()
    for path in held[first]:
        found = orthanc.find_by_sop_instance_uid(sop_instance_uid(path))
        assert found is not None, path
        assert orthanc.instance_tags(found)["PatientName"] == "ROE^RICHARD"

    discarded = run_cli(["receiver", "holds", "discard", second, *settings], cwd=tmp_path).ok()
    assert f"The held study {second} was removed from this machine" in discarded.stdout
    # No credential in its settings nor its environment: it cannot tell the relay, and says so.
    assert "The relay could not be told, so the emergency department" in discarded.stdout
    assert relay.audit_seq(second, "discard-receipt") is None
    again = run_cli(["receiver", "holds", "discard", second, *settings], cwd=tmp_path).failed()
    assert "no longer held on this machine" in again.message

    assert run_cli(["receiver", "holds", *settings], cwd=tmp_path).ok().stdout.strip() == (
        "No study is held on this machine."
    )
    for path in held[second]:
        assert orthanc.find_by_sop_instance_uid(sop_instance_uid(path)) is None, path
    lines = (state / "receiving" / "console-audit.jsonl").read_text("utf-8").splitlines()
    everything = [json.loads(line) for line in lines]
    # The redemptions that held both studies are there too (`redeem`'s own records), and the
    # one that resumed the first to store it under the local record.
    opened = [r["detail"]["transfer"] for r in everything if r["action"] == "study-redeemed"]
    assert set(opened) == {first, second}
    imported = [r["detail"]["transfer"] for r in everything if r["action"] == "study-imported"]
    assert imported == [first]
    records = [r for r in everything if r["action"].startswith("hold-")]
    assert [(r["action"], r["outcome"], r["detail"]["transfer_id"]) for r in records] == [
        ("hold-discard", "success", second)
    ]  # the second discard found nothing to decide about
    assert records[0]["who"].endswith("(command line)")
