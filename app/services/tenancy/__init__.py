"""Tenants, API keys, clients and closings: who owns what."""
