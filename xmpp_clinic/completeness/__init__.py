"""Message completeness (II.2): part sets and, later, delivery tracking.

Pure decisions over plain data (:mod:`.parts`) and their store access (:mod:`.part_store`);
nothing here knows slixmpp. The stanza side lives in ``xmpp/parts.py``.
"""
