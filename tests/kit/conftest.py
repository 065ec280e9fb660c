"""Fixtures shared by the core's tests."""

from __future__ import annotations

import pytest

from kit.web.app import create_app


@pytest.fixture
def app(ctx):
    """The kit's web app on the test's kit (real database and broker), in Flask's testing mode."""
    application = create_app(ctx)
    application.testing = True
    return application
