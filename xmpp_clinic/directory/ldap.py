"""Reading the directory from LDAP / Active Directory with ldap3 (IV.2, I.3).

ldap3 rather than bonsai: it is pure Python (nothing to compile against libldap and
libsasl on the gateway host), has typed stubs, and does paged searches (RFC 2696),
StartTLS and LDAPS with a CA file out of the box. It is synchronous: the running
gateway calls :func:`read_ldap` in a worker thread.

Each entry the person filter matches becomes one person (the attribute mapping is in
``[directory.ldap.attributes]``); an entry that does not make a valid person is reported
with its DN's position in the result and skipped, as a bad CSV row is.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

from ldap3 import SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from xmpp_clinic.directory.csv_import import BadRow, Collector, Parsed, person_from
from xmpp_clinic.directory.model import DirectoryError
from xmpp_clinic.settings.directory import LdapSettings


class LdapUnavailable(DirectoryError):
    """The LDAP server could not be reached, bound or searched: nothing is changed."""


def _values(attributes: dict[str, object], name: str) -> list[str]:
    value = attributes.get(name)
    if value is None:
        return []
    items: Iterable[object] = value if isinstance(value, list) else [value]
    return [v.decode() if isinstance(v, bytes) else str(v) for v in items]


def group_name(value: str) -> str:
    """``cn=ward-4b,ou=groups,dc=h`` -> ``ward-4b``; a plain value stays as it is."""
    if "=" not in value:
        return value
    try:
        return str(parse_dn(value)[0][1])
    except (LDAPException, IndexError):
        return value


def _connection(settings: LdapSettings) -> Connection:
    tls = None
    if settings.ca_file is not None or settings.url.startswith("ldaps") or settings.start_tls:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=str(settings.ca_file) if settings.ca_file else None,
        )
    server = Server(settings.url, tls=tls, connect_timeout=settings.timeout_seconds)
    password = ""
    if settings.bind_password_file is not None:
        password = settings.bind_password_file.read_text(encoding="utf-8").strip()
    return Connection(
        server,
        user=settings.bind_dn or None,
        password=password or None,
        receive_timeout=settings.timeout_seconds,
        raise_exceptions=True,
        read_only=True,
    )


def read_ldap(settings: LdapSettings, user_domains: frozenset[str]) -> Parsed:
    """Every person the filter finds under ``base_dn``, read with paged searches.

    Raises LdapUnavailable (naming the step, never the password) when the server cannot
    be reached, the bind fails or the search fails: a partial read is never applied.
    """
    mapping = settings.attributes
    wanted = [mapping.jid, mapping.name, mapping.staff_id, mapping.role, mapping.groups]
    collector = Collector()
    step = "connect"
    try:
        conn = _connection(settings)
        conn.open()
        if settings.start_tls:
            step = "StartTLS"
            conn.start_tls()
        step = "bind"
        conn.bind()
        step = "search"
        entries = conn.extend.standard.paged_search(
            settings.base_dn,
            settings.person_filter,
            search_scope=SUBTREE,
            attributes=wanted,
            paged_size=settings.page_size,
            generator=True,
        )
        for position, entry in enumerate(entries, start=1):
            if entry.get("type") != "searchResEntry":
                continue
            attrs = dict(entry.get("attributes", {}))
            try:
                person = person_from(
                    jids=_values(attrs, mapping.jid),
                    name=" ".join(_values(attrs, mapping.name)[:1]),
                    staff_id=" ".join(_values(attrs, mapping.staff_id)[:1]),
                    role=" ".join(_values(attrs, mapping.role)[:1]),
                    groups=[group_name(g) for g in _values(attrs, mapping.groups)],
                    user_domains=user_domains,
                )
            except DirectoryError as exc:
                collector.bad.append(BadRow(position, f"{entry.get('dn', '?')}: {exc}"))
                continue
            collector.add(position, person)
        conn.unbind()
    except LDAPException as exc:
        raise LdapUnavailable(
            f"LDAP {step} failed at {settings.url} ({type(exc).__name__}); nothing was changed"
        ) from None
    except OSError as exc:
        raise LdapUnavailable(
            f"cannot read directory.ldap.bind_password_file ({exc.strerror}); nothing was changed"
        ) from None
    return collector.parsed()
