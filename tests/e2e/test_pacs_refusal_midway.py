"""A PACS that refuses one image midway through a whole study (here Orthanc, whose Lua filter
rejects image 4 of 6): the images it accepted before stay there. The redeem says how many and
that the PACS copy is INCOMPLETE, and the hold it leaves for review counts them (it counted
none), so the holds queue and a discard's report to the ER say so too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from peers.orthanc import OrthancServer

from e2e.harness import E2ERelay, pacs_address, run_cli
from receiving_site import hold_record
from sending_site.synthetic import make_ct_study

# Orthanc 1.10 answers success for an image its filter merely returns false for (and drops
# it); an error in the filter makes it answer a failure status, as a PACS refusing that image.
REFUSE_IMAGE_4 = """
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.InstanceNumber == '4' then
    error('image 4 is refused')
  end
  return true
end
"""


def _refused_midway(
    relay: E2ERelay, pacs: OrthancServer, tmp_path: Path, seed: int, *options: str
) -> None:
    """Push a study of 6 images, authorize it, and redeem it into `pacs` with `options`: the
    redeem fails at image 4. Checks what it says, and that the hold counts what `pacs` kept (3:
    those before image 4)."""
    make_ct_study(tmp_path / "study", 6, seed=seed)
    pushed = relay.push([tmp_path / "study"], workdir=tmp_path).ok().json()
    relay.authorize(pushed)
    state = tmp_path / "tc-state"
    run = run_cli(
        [*relay.redeem_args(state=state, pacs=pacs_address(pacs)), *options],
        cwd=tmp_path,
        credential=relay.receiver_credential,
        stdin=pushed["code"] + "\n",
    ).failed()

    assert len(pacs.instances()) == 3, run.message
    assert "othing was stored" not in run.message
    assert "3 of the 6 images were already stored in the PACS" in run.message
    assert "the study there is INCOMPLETE" in run.message
    held = hold_record.load(state, pushed["transfer_id"])
    assert held is not None
    assert (held.reason, held.stored_in_pacs) == (hold_record.Reason.PACS_REFUSED, 3)


def test_a_refusal_midway_counts_what_the_pacs_kept(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    pacs = orthanc_factory(lua=REFUSE_IMAGE_4)
    # One association, in order: images 1 to 3 stored, then 4 refused.
    _refused_midway(relay, pacs, tmp_path, 6161, "--associations", "1")


def test_a_refusal_within_a_stow_rs_batch_counts_what_the_pacs_kept(
    relay: E2ERelay, orthanc_factory: Callable[..., OrthancServer], tmp_path: Path
) -> None:
    """Over STOW-RS the six images go in one request; Orthanc keeps those before image 4 (a
    PACS may keep others too): what it kept is counted, though the request failed."""
    pacs = orthanc_factory(lua=REFUSE_IMAGE_4, dicomweb=True)
    _refused_midway(relay, pacs, tmp_path, 6262, "--stow", pacs.dicomweb_url)
