-- The inbox index, version 1: what the agent received, as it arrived. It holds patient data
-- and lives in the spool folder, beside the images, on the hospital's own machine.
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    -- a study belongs to one of these; two names under one ID are two rows, never merged
    UNIQUE (patient_id, issuer, name, birth_date)
);

CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    study_instance_uid TEXT NOT NULL UNIQUE,
    patient INTEGER NOT NULL REFERENCES patients (id),
    accession_number TEXT NOT NULL,
    study_date TEXT NOT NULL,
    study_time TEXT NOT NULL,
    description TEXT NOT NULL,
    first_arrival REAL NOT NULL,  -- seconds since the epoch
    last_arrival REAL NOT NULL    -- the study's "stable" age is counted from here
);
CREATE INDEX studies_by_patient ON studies (patient);
CREATE INDEX studies_by_last_arrival ON studies (last_arrival);

CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    series_instance_uid TEXT NOT NULL UNIQUE,
    study INTEGER NOT NULL REFERENCES studies (id),
    modality TEXT NOT NULL,
    series_number INTEGER,
    description TEXT NOT NULL,
    thinnest_slice_mm REAL  -- the smallest Slice Thickness of its images; NULL if none had one
);
CREATE INDEX series_by_study ON series (study);

CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    sop_instance_uid TEXT NOT NULL UNIQUE,
    series INTEGER NOT NULL REFERENCES series (id),
    sop_class_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    instance_number INTEGER,
    file TEXT NOT NULL UNIQUE,  -- our id: SPOOL/instances/<file>.dcm
    size INTEGER NOT NULL,
    arrived_at REAL NOT NULL,
    calling_ae_title TEXT NOT NULL
);
CREATE INDEX instances_by_series ON instances (series);
