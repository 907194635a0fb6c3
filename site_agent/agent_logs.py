"""How a site agent's long-running process logs (`trauma-relay sender`, `sender console`,
`receiver`): one line per event, at INFO, with pydicom's and pynetdicom's own logs quieted to
errors. At INFO pynetdicom logs every C-FIND identifier and answer (patient names, birth dates,
record numbers), and hostile or sloppy peers make both warn about every odd value; the agents
log what they did themselves, without patient data."""

from __future__ import annotations

import logging
import warnings

from site_agent.credential import AgentCredential
from site_agent.errors import AgentError

log = logging.getLogger("site_agent")


def configure() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pynetdicom").setLevel(logging.ERROR)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom\.")


def warn_without_credential(credential: AgentCredential) -> None:
    """Say in the log, once at start, that the relay credential cannot be read (a missing one
    in the words of the agent's settings): the agent still serves its console (accounts,
    settings), but nothing reaches the relay until it is fixed, and staff would otherwise learn
    it only when they first send or redeem."""
    try:
        credential.read()
    except AgentError as e:
        log.warning("%s Nothing can reach the relay until this is fixed.", e.detail)
