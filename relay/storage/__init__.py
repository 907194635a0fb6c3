"""Relay storage behind narrow interfaces: metadata (`MetadataStore`) and sealed objects
(`ObjectStore`). The embedded defaults are SQLite (`sqlite.py`) and a folder (`files.py`)."""
