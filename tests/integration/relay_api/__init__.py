"""The relay's HTTP API, in-process on port 0, driven as the sites and the patient drive it:
one module a resource, sharing `plumbing` and the `ctx` fixture."""
