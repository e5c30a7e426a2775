"""All tables, one module per domain; importing this package registers every module.

A new domain adds a module here; nothing else needs editing for Alembic to see it.
"""

import importlib
import pkgutil

from xmpp_clinic.store.models.gateway import ChangeCounter, GatewayEvent

for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ChangeCounter", "GatewayEvent"]
