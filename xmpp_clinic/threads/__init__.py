"""Care threads as a domain: threads, members, affiliations (IV.2)."""

from xmpp_clinic.threads.book import MembershipChange, ThreadBook
from xmpp_clinic.threads.model import (
    AFFILIATIONS,
    Affiliation,
    InvalidThread,
    Kind,
    MemberInfo,
    MemberNotFound,
    OutsideUserDomains,
    ThreadError,
    ThreadExists,
    ThreadInfo,
    ThreadNotFound,
    direct_name,
)
from xmpp_clinic.threads.service import ThreadService

__all__ = [
    "AFFILIATIONS",
    "Affiliation",
    "InvalidThread",
    "Kind",
    "MemberInfo",
    "MemberNotFound",
    "MembershipChange",
    "OutsideUserDomains",
    "ThreadBook",
    "ThreadError",
    "ThreadExists",
    "ThreadInfo",
    "ThreadNotFound",
    "ThreadService",
    "direct_name",
]
