"""Reading ledger files (CSV, XLSX) into typed movements: pure, no I/O but the file."""
