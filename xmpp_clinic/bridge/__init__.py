"""The HIS bridge (I.6): an authenticated HTTP API with FHIR R4, HL7 v2 MDM push, ADT intake.

It reads threads through :mod:`xmpp_clinic.threads`, the audit trail through
:mod:`xmpp_clinic.archive.audit` and documentation copies through the
:class:`~xmpp_clinic.bridge.records.DocumentationCopies` protocol that the records room
provides; its own state (tokens, cases, the outbox) lives in ``store/models/bridge.py``.
It never imports ``xmpp/``.
"""
