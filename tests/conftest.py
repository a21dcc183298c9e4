from datetime import UTC, datetime

import pytest


@pytest.fixture
def now() -> datetime:
    """A fixed 'now' for booking rules: Monday 5 Jan 2026, 12:00 UTC."""
    return datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
