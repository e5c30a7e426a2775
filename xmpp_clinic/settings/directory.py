"""``[directory]``: the hospital directory as the source of membership (IV.2, I.3).

The section is optional: without it the gateway runs in the small deployment mode
(members typed in by hand), which check-config and the report name as a weaker control.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xmpp_clinic.settings.base import FilePath, Section


class LdapAttributes(Section):
    """Which LDAP attribute holds which field of a person (I.3)."""

    jid: str = "mail"  # one or more values; each must be a JID in xmpp.user_domains
    name: str = "cn"
    staff_id: str = "employeeNumber"
    role: str = "title"
    # Group names: plain values ("ward-4b") or DNs ("cn=ward-4b,ou=groups,..."; the first
    # RDN's value is taken), so both an ``ou`` attribute and AD's ``memberOf`` serve.
    groups: str = "memberOf"


class LdapSettings(Section):
    """``[directory.ldap]``: the LDAP / Active Directory server ``directory sync`` reads."""

    url: str  # ldap://host:389 (with start_tls) or ldaps://host:636
    base_dn: str
    person_filter: str = "(objectClass=inetOrgPerson)"
    bind_dn: str = ""  # empty: anonymous bind
    bind_password_file: FilePath | None = None
    start_tls: bool = False
    ca_file: FilePath | None = None  # verify the server against this CA (LDAPS / StartTLS)
    page_size: Annotated[int, Field(ge=1, le=10000)] = 500
    timeout_seconds: Annotated[int, Field(ge=1, le=600)] = 30
    attributes: LdapAttributes = LdapAttributes()


class DirectorySettings(Section):
    """Where persons and groups come from (CSV import, LDAP / Active Directory sync)."""

    # An import or sync that would remove more than this share of the persons is refused
    # unless forced: an empty or truncated export must not offboard the hospital.
    max_removal_share: Annotated[float, Field(ge=0.0, le=1.0)] = 0.10
    # The running gateway syncs from LDAP this often; None: only `directory sync` does.
    sync_interval_minutes: Annotated[int, Field(ge=1)] | None = None
    # The roster group (XEP-0356 roster push) holding a person's threads and colleagues.
    roster_group: Annotated[str, Field(min_length=1, max_length=64)] = "Clinic"
    # ejabberd 23.01 fails XEP-0356 roster sets: its mod_http_api base URL (e.g.
    # http://127.0.0.1:5280/api) lets the gateway write rosters there instead.
    ejabberd_api_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    ldap: LdapSettings | None = None
