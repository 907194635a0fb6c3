-- trauma-relay metadata, version 5: what stays of the codes of a transfer that the patient or
-- family cancelled on their phone, until the transfer would have expired: each code's salt and
-- verifier, never its wrapped key, so nothing can be unlocked with them. A trauma center that
-- presents the right code is told the family cancelled it; any other proof gets the answer a
-- wrong code gets. The locator stays reserved meanwhile, so no new transfer takes it.
CREATE TABLE cancelled_locks (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('code', 'capability')),
    salt BLOB NOT NULL,
    verifier BLOB NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);
