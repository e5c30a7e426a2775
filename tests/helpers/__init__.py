"""Shared helpers for the test suite (XMPP bots against the dev servers)."""
