"""The patient's phone pages: static HTML, CSS and JavaScript served by `relay.api.phone`."""
