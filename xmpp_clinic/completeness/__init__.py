"""Message completeness (II.2): part sets and delivery tracking.

Pure decisions over plain data (:mod:`.parts`, :mod:`.delivery`) and their store access
(:mod:`.part_store`, :mod:`.delivery_store`);
nothing here knows slixmpp. The stanza side lives in ``xmpp/parts.py`` and
``xmpp/delivery.py``.
"""
