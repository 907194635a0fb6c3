"""What `redeem --as-they-arrive` says when the transfer fails after some images were stored:
never "Nothing was stored", always how many are in the PACS and that the copy is incomplete."""

from __future__ import annotations

import pytest

from receiving_site import errors
from receiving_site.as_they_arrive import incomplete_in_pacs

INCOMPLETE = (
    "{stored} of the 12 {images} already stored in the PACS before this was found, so the study "
    "there is INCOMPLETE: tell radiology not to rely on it as the whole study."
)


@pytest.mark.parametrize(
    ("failure", "kept"),
    [
        (
            errors.IdentityMismatch().message,
            "The images do not all belong to the patient named in the transfer. A person must "
            "review this transfer.",
        ),
        (
            "3 images listed in the manifest are missing. Nothing was stored in the PACS. Call "
            "the sending hospital.",
            "3 images listed in the manifest are missing. Call the sending hospital.",
        ),
        (
            "The sending hospital has not finished uploading (5 images verified so far); "
            "nothing was stored.",
            "The sending hospital has not finished uploading (5 images verified so far).",
        ),
        (
            "The PACS refused image 6 (status 0xA700). 5 images were stored.",
            "The PACS refused image 6 (status 0xA700).",
        ),
        (
            "The DICOMweb server at http://pacs/dicom-web did not store every image. Image 6 of "
            "12 was not stored: the server is out of space (reason 0xA700). 4 images were "
            "stored; check the server's log, then run again (images already stored are not "
            "duplicated).",
            "The DICOMweb server at http://pacs/dicom-web did not store every image. Image 6 of "
            "12 was not stored: the server is out of space (reason 0xA700). Check the server's "
            "log, then run again (images already stored are not duplicated).",
        ),
    ],
)
def test_the_failure_says_how_many_images_the_pacs_has(failure: str, kept: str) -> None:
    said = incomplete_in_pacs(failure, 5, 12)
    assert said == f"{kept} {INCOMPLETE.format(stored=5, images='images were')}"
    assert "othing was stored" not in said


def test_one_image() -> None:
    said = incomplete_in_pacs(errors.IdentityMismatch().message, 1, 12)
    assert said.endswith(INCOMPLETE.format(stored=1, images="image was"))
