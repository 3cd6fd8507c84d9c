"""Where the suite finds the public third-party ledgers: shared/ beside the checkout."""

from pathlib import Path

PUBLIC_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "public"
