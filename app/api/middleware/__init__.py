"""Pure ASGI middleware of the API."""
