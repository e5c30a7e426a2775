"""pytest plugin: the ``requirement`` marker (I.11).

``@pytest.mark.requirement("II.1")`` names the catalogue IDs a test proves. The plugin
registers the marker (so ``--strict-markers`` accepts it), refuses IDs that are not in
the shipped catalogue, and records each ID as a ``requirement`` property of the test
case, so a JUnit file (``--junitxml``) carries the mapping to ``xmpp-clinic report``.

Load it with ``-p xmpp_clinic.report.pytest_plugin`` (pyproject ``addopts``).
"""

from __future__ import annotations

import pytest

from xmpp_clinic.report.catalogue import catalogue_ids
from xmpp_clinic.report.tests import MARKER


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(*ids): the requirement IDs (I.1 .. IV.9) this test proves"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    known = set(catalogue_ids())
    for item in items:
        for marker in item.iter_markers(MARKER):
            for requirement in marker.args:
                if requirement not in known:
                    raise pytest.UsageError(
                        f"{item.nodeid}: requirement {requirement!r} is not in the catalogue"
                    )
                item.user_properties.append((MARKER, requirement))
