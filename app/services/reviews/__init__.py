"""Reviews of incidences and the close gate (SPEC §10)."""
