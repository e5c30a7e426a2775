"""Care threads as a domain: threads, members, affiliations (IV.2)."""

from xmpp_clinic.threads.book import MembershipChange, ThreadBook
from xmpp_clinic.threads.events import UNKNOWN_ACTOR, ThreadEvent
from xmpp_clinic.threads.model import (
    AFFILIATIONS,
    Affiliation,
    ConcurrentChange,
    InvalidThread,
    Kind,
    MemberInfo,
    MemberNotFound,
    NotInDirectory,
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
    "UNKNOWN_ACTOR",
    "Affiliation",
    "ConcurrentChange",
    "InvalidThread",
    "Kind",
    "MemberInfo",
    "MemberNotFound",
    "MembershipChange",
    "NotInDirectory",
    "OutsideUserDomains",
    "ThreadBook",
    "ThreadError",
    "ThreadEvent",
    "ThreadExists",
    "ThreadInfo",
    "ThreadNotFound",
    "ThreadService",
    "direct_name",
]
