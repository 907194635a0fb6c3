"""The relay's audit trail for an auditor: `trauma-relay audit verify` checks its hash chain and
says which record is wrong; `trauma-relay audit export` writes it as JSON lines or as DICOM
PS3.15 audit messages; `audit forward` sends those to a syslog receiver over TLS. All read the
relay's database read-only, so the relay may be running."""
