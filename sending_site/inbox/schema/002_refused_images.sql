-- The inbox index, version 2: images refused because they name another patient than the one
-- their study is held under (a mix-up at the scanner or in the PACS). The image itself is
-- not kept, nor whom it named: only that it came, when and from which AE title, so that staff
-- see the study goes without it. Like the rest of the index, this stays on the agent's own
-- machine and is never sent anywhere.
CREATE TABLE refused_images (
    id INTEGER PRIMARY KEY,
    study INTEGER NOT NULL REFERENCES studies (id),
    sop_instance_uid TEXT NOT NULL,
    refused_at REAL NOT NULL,  -- seconds since the epoch, the last time it was refused
    calling_ae_title TEXT NOT NULL,
    -- sent again and refused again, it is still one image
    UNIQUE (study, sop_instance_uid)
);
-- Kept later under its SOP Instance UID (corrected and sent again), it is no longer refused.
CREATE INDEX refused_images_by_instance ON refused_images (sop_instance_uid);
