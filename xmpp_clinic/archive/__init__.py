"""Tamper-evident storage: message archive and audit events (II.2)."""
