"""The sending agent as one process (`trauma-relay sender --config FILE`): its DICOM inbox, the
ER console and the pushes the console starts, on one event loop."""
