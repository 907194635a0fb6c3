"""The text values the manifest carries as they are: a control character left in after
decoding is refused before anything is sent, naming the file, the attribute and the value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sending_site.collect import Instance
from sending_site.errors import ControlCharacterInValue
from sending_site.text_values import check

CT = Instance(
    path=Path("/disc/IM0001"),
    size=500_000,
    sop_instance_uid="1.2.3.1.1",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    series_instance_uid="1.2.3.1",
    study_instance_uid="1.2.3",
    transfer_syntax_uid="1.2.840.10008.1.2.1",
    patient_id="ER-1",
    issuer_of_patient_id="",
    patient_name="Yamada^Tarou=\u5c71\u7530^\u592a\u90ce",  # decoded from ISO 2022 IR 87
    patient_birth_date="19850214",
    patient_sex="M",
    study_date="20250101",
    study_description="CT HEAD",
    accession_number="",
    modality="CT",
    specific_character_set="\\ISO 2022 IR 87",
)


def test_decoded_values_without_controls_pass() -> None:
    check([CT, replace(CT, path=Path("/disc/IM0002"))])


def test_an_escape_in_the_default_repertoire_is_told_with_what_to_do() -> None:
    bad = replace(CT, patient_name="DOE^JOHN\x1b", specific_character_set="")
    with pytest.raises(ControlCharacterInValue) as refused:
        check([bad, replace(bad, path=Path("/disc/IM0002")), replace(bad, path=Path("/d/IM3"))])
    said = str(refused.value)
    assert said.startswith(
        'IM0001 and 2 other files: the Patient\'s Name (0010,0010) is "DOE^JOHN\\x1b", with a '
        "control character (\\x1b) that DICOM does not allow in it (an ESC may only begin"
    )
    assert "the file declares none (the default repertoire))." in said
    assert said.endswith("export the study again and push that.")
    assert "\x1b" not in said


def test_other_values_and_controls_are_named_too() -> None:
    with pytest.raises(ControlCharacterInValue) as refused:
        check([replace(CT, study_description="CT\tHEAD\x00")])
    said = str(refused.value)
    assert 'IM0001: the Study Description (0008,1030) is "CT\\x09HEAD\\x00"' in said
    assert "(\\x09, \\x00)" in said
    assert "ESC" not in said
