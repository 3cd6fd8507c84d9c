"""Charts of accounts and document types, and the reprocessing their changes trigger."""
