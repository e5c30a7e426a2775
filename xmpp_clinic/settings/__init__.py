"""Config sections of the rooms added after the core, one module per room.

``xmpp_clinic.config`` assembles them into the one :class:`~xmpp_clinic.config.Settings`
object; each room's owner keeps its keys, defaults and checks beside each other here.
Every section forbids unknown keys and is strictly typed (see ``base.Section``).
"""
