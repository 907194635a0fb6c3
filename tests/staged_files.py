"""Files on disk as the receiving site holds them after verification (`StagedObject`s with the
manifest entries a redeem would have), for tests that deliver without a relay."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

from receiving_site.staging import StagedObject
from transfer_codes.manifest import ManifestEntry


def staged(paths: list[Path]) -> list[StagedObject]:
    items = []
    for index, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        data = path.read_bytes()
        entry = ManifestEntry(
            index=index,
            sop_instance_uid=str(ds.SOPInstanceUID),
            series_instance_uid=str(ds.SeriesInstanceUID),
            study_instance_uid=str(ds.StudyInstanceUID),
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            kind="dicom",
        )
        items.append(StagedObject(entry, path))
    return items
