"""Hostile input through the real component stream (issue 8)."""
