"""Reading submitted data forms (XEP-0004) through slixmpp's Form stanza class (II.4).

MAM queries, room configuration and ad-hoc commands all receive ``jabber:x:data``
forms; they read them here, the same way: every value as text, a missing field as
empty, never a boolean or list guessed from the field type.
"""

from __future__ import annotations

from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream import ElementBase

from xmpp_clinic.xmpp.errors import FormError


def form_of(parent: ElementBase) -> Form | None:
    """The data form inside ``parent`` (a query or command), if it has one."""
    found = parent.get_plugin("form", check=True)
    return found if isinstance(found, Form) else None


def values(form: Form | None, var: str) -> list[str]:
    """Every ``<value>`` of field ``var`` as given (``[]`` when the field is absent)."""
    if form is None:
        return []
    field = form.get_fields().get(var)
    if field is None:
        return []
    raw = field.get_value(convert=False)
    if raw is None:
        return []
    return [str(item) for item in raw] if isinstance(raw, list) else [str(raw)]


def text(form: Form | None, var: str) -> str:
    """The first value of ``var``, stripped; ``""`` when absent or empty."""
    found = values(form, var)
    return found[0].strip() if found else ""


def required(form: Form | None, var: str) -> str:
    """The first value of ``var``; a :class:`FormError` naming it when it is empty."""
    found = text(form, var)
    if not found:
        raise FormError(f"'{var}' is required")
    return found


def all_values(form: Form | None) -> dict[str, str]:
    """Every field's first value, stripped (fields without a value are left out)."""
    if form is None:
        return {}
    return {var: text(form, var) for var in form.get_fields() if var and values(form, var)}


def check_bounds(form: Form | None, var: str, max_chars: int, max_values: int) -> None:
    """A :class:`FormError` naming ``var`` and the limit when a value is too long, or
    when there are more than ``max_values`` values (I.12: every text is bounded)."""
    found = values(form, var)
    if len(found) > max_values:
        raise FormError(f"'{var}' takes at most {max_values} values")
    if any(len(value) > max_chars for value in found):
        raise FormError(f"'{var}' is at most {max_chars} characters")
