"""Retention: how long data is kept, purge with anchors and receipts, erasure, backups.

Pure decisions (:mod:`.policy`) and store access; no slixmpp (DESIGN.md). I.7, I.9,
II.3, IV.8.
"""
