-- trauma-relay metadata, version 7: where consent came from. The sending site holds the
-- patient's authorization link, so a "patient" authorization posted from the sending site's own
-- address is flagged for the trauma center to see. sender_addresses: the client addresses the
-- sending site used for this transfer (JSON list, a few at most; site addresses, no PHI);
-- consent_from_sender: 1 when the patient's or family's authorization came from one of them.
CREATE TABLE transfer_origins (
    transfer_id TEXT PRIMARY KEY REFERENCES transfers (id),
    sender_addresses TEXT NOT NULL DEFAULT '[]',
    consent_from_sender INTEGER NOT NULL DEFAULT 0
);
