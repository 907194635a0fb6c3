-- trauma-relay metadata, version 2: what the patient's phone reads and writes, sealed under a
-- key that only the sending site and the phone hold (it rides in the link's fragment). The relay
-- stores these opaque: 'summary' and 'code' come from the sender, 'authorizer' (who authorized,
-- their relationship and when) from the phone. Who authorized as a role (patient, family,
-- break_glass) is in transfers.authorized_by: that much the relay must know to show it.
CREATE TABLE phone_blobs (
    transfer_id TEXT NOT NULL REFERENCES transfers (id),
    kind TEXT NOT NULL CHECK (kind IN ('summary', 'code', 'authorizer')),
    sealed BLOB NOT NULL,
    PRIMARY KEY (transfer_id, kind)
);
