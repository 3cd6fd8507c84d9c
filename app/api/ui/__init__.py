"""The web console at /ui: a page and static assets; every figure it shows comes from the API."""
