"""The compliance report: every requirement with its control, status and evidence.

Pure room (no slixmpp): it reads settings, the store and test results, decides a status
per requirement (I.11, IV.3, IV.4) and renders Markdown, JSON or one HTML page. Client
version checks (I.13, III.2, IV.9) live here as plain decisions; ``xmpp/`` asks.
"""
