"""`python -m app.cli`: the same as the `ledger-incidences` command (its exit status too)."""

from app.cli.main import main

raise SystemExit(main())
