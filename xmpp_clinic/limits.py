"""Every bound the gateway puts on what people and operators may give it (I.12).

One place, so the CLI, the ad-hoc commands, the room host and the config agree, and the
error texts can quote the same numbers.
"""

from __future__ import annotations

# Device approvals: at least a day, at most ten years; re-validation is the point (I.5).
MIN_VALID_DAYS, MAX_VALID_DAYS = 1, 3650

# Texts shown to every member (thread titles, subjects) and nicknames.
MAX_TITLE_CHARS = 200
MAX_SUBJECT_CHARS = 1000
MAX_NICK_CHARS = 64
MAX_REASON_CHARS = 500

# RFC 7622 3.1: each part of a JID is at most 1023 octets.
MAX_JID_PART_BYTES = 1023
