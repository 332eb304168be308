"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ome_schema():
    """The OME 2016-06 XSD, taken from the Bio-Formats jar (offline), as an xmlschema validator."""
    import xmlschema

    from omeio.jar import schema_dir

    return xmlschema.XMLSchema(str(schema_dir() / "ome.xsd"))
