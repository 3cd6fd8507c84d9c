"""Where the suite finds its data files: inside the repository, never beside it."""

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
# Third-party public ledgers (MIT, see their README and LICENSE).
PUBLIC_DATA = DATA / "accounting_analytics"
