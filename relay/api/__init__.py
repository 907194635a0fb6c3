"""The relay's HTTP API: the thin wire layer around the lifecycle and the stores."""
