"""End-to-end acceptance tests: the real `trauma-relay` commands against a real relay process,
real DICOM peers (pynetdicom, Orthanc) and real files (issue 3, "Acceptance")."""
