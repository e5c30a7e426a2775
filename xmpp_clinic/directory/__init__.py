"""The hospital directory: who may talk to whom (IV.2, I.3).

- ``model``: persons, groups, memberships and the diff between two snapshots (pure);
- ``csv_import`` / ``ldap``: reading a snapshot from a CSV export or LDAP / AD;
- ``store``: the directory tables; ``service``: applying an import (guard, threads,
  offboarding); ``sync``: the running gateway's periodic sync;
- ``roster`` / ``search``: what roster push and XEP-0055 search answer (pure).

Threads bound to groups are reconciled by ``xmpp_clinic.threads.binding``.
"""
