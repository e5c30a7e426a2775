"""``python -m xmpp_clinic`` is the ``xmpp-clinic`` command."""

from xmpp_clinic.cli import main

main()
