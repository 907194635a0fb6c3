"""The sending agent's DICOM node: where the ER's PACS or scanner sends studies (the inbox).

`scp` receives (C-ECHO, C-STORE), `bounds` keeps hostile peers within limits, `spool` writes
every instance durably under the agent's own ids, `index` records patients, studies, series
and instances as they arrive, `pacs` asks the hospital PACS (C-FIND, C-MOVE), `completeness`
decides whether a study looks whole, and `handoff` gives a spooled study to `push`.
"""
