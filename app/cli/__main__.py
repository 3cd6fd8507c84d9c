"""`python -m app.cli`: the same as the `ledger-incidences` command."""

import sys

from app.cli.main import main

sys.exit(main())
