"""Content negotiation of the response encoding: what a client's Accept-Encoding accepts."""

from __future__ import annotations


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether Accept-Encoding (RFC 9110 §12.5.3) accepts gzip: named (or `x-gzip`, or `*`
    when gzip is not named) with a weight above 0."""
    if not accept_encoding:
        return False
    weights: dict[str, float] = {}
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.strip().partition(";")
        weight = 1.0
        name, _, value = params.strip().partition("=")
        if name.strip() == "q":
            try:
                weight = float(value)
            except ValueError:
                weight = 0.0
        weights[coding.strip()] = weight
    named = weights.get("gzip", weights.get("x-gzip"))
    return (named if named is not None else weights.get("*", 0.0)) > 0
