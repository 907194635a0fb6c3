"""How a site agent's long-running process logs (`trauma-relay sender`, `sender console`,
`receiver`): one line per event, at INFO, with pydicom's and pynetdicom's own logs quieted to
errors. At INFO pynetdicom logs every C-FIND identifier and answer (patient names, birth dates,
record numbers), and hostile or sloppy peers make both warn about every odd value; the agents
log what they did themselves, without patient data."""

from __future__ import annotations

import logging
import warnings


def configure() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")
