"""Relay storage behind narrow interfaces: metadata (`MetadataStore`) and sealed objects
(`ObjectStore`). The embedded defaults are SQLite (`sqlite.py`) and a folder (`files.py`);
several relay instances share their metadata in PostgreSQL (`postgres.py`); `opening.py` picks
the one the configuration names."""
