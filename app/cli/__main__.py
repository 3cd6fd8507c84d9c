"""`python -m app.cli`: the same as the `ledger-incidences` command."""

from app.cli.main import main

main()
