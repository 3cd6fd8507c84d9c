"""Operations: probes, job metrics, backups."""
