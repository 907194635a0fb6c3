"""The synthetic studies of the suite, made once with `sending_site.synthetic` and kept in
`ops/bench/.studies/` (git-ignored; the files are deterministic, so a kept one is the same)."""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from sending_site.synthetic import make_ct_study

CACHE = Path(__file__).resolve().parent / ".studies"


@dataclass(frozen=True)
class Study:
    """`instances` CT slices of `size` x `size` 16-bit pixels, from `seed`."""

    name: str
    instances: int
    size: int
    seed: int = 0

    @property
    def folder(self) -> Path:
        return CACHE / f"{self.name}-{self.instances}x{self.size}-s{self.seed}"

    def files(self) -> list[Path]:
        """The study's files, made now if not kept from an earlier run."""
        done = self.folder / ".complete"
        if not done.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            make_ct_study(
                self.folder / "dicom",
                self.instances,
                rows=self.size,
                columns=self.size,
                seed=self.seed,
                patient_id=f"BENCH-{self.seed}",
            )
            done.touch()
        return sorted((self.folder / "dicom").glob("*.dcm"))

    @property
    def dicom(self) -> Path:
        return self.folder / "dicom"

    def megabytes(self) -> float:
        return sum(f.stat().st_size for f in self.files()) / 1e6

    def tar(self) -> Path:
        """The same files in one uncompressed tar (what magic-wormhole is given: the same bytes,
        not a folder it would deflate)."""
        path = self.folder / "study.tar"
        if not path.exists():
            partial = path.with_suffix(".partial")
            with tarfile.open(partial, "w") as tar:
                for file in self.files():
                    tar.add(file, arcname=file.name)
            partial.rename(path)
        return path


def studies(quick: bool) -> dict[str, Study]:
    """The suite's studies; `quick` makes them tiny."""
    if quick:
        return {
            "ct": Study("ct", 20, 128),
            "small": Study("small", 60, 32, seed=1),
            "large": Study("large", 80, 128, seed=2),
        }
    return {
        "ct": Study("ct", 400, 512),  # ~210 MB
        "small": Study("small", 2000, 128, seed=1),  # ~70 MB
        "large": Study("large", 4000, 512, seed=2),  # ~2.1 GB
    }


def concurrent_studies(quick: bool, count: int) -> list[Study]:
    """`count` + 1 different studies of ~20 MB (the first goes alone)."""
    if quick:
        return [Study("conc", 5, 64, seed=100 + i) for i in range(count + 1)]
    return [Study("conc", 40, 512, seed=100 + i) for i in range(count + 1)]
