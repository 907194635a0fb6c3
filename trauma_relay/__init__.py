"""The composition root: the `trauma-relay` command's dispatch and the demo. The only package
that imports the relay and both site agents together."""
