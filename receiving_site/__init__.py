"""The trauma center's agent: redeem a code, verify every object, deliver into the PACS."""
