"""The audit trail (SPEC §9): who changed what and when, written with each change, read back
by admins (all of a tenant's) and viewers (one account's history)."""
