-- trauma-relay metadata, version 4: who revoked a transfer, so its sender and the patient's
-- phone can say so: 'patient' or 'family' (from the phone) or 'sending_site'. A revocation by the
-- patient or family before anyone authorized is their declining to share
-- (relay.lifecycle.Transfer.was_declined). NULL while not revoked, and for transfers revoked
-- before this version (who did it was not recorded then).
ALTER TABLE transfers ADD COLUMN revoked_by TEXT
    CHECK (revoked_by IN ('patient', 'family', 'sending_site'));
