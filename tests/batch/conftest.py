"""One real Spark ``local[2]`` session for the batch tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nexus.batch.jobs import spark_session


@pytest.fixture(scope="session")
def spark() -> Iterator:
    session = spark_session("local[2]", "nexus-batch-tests")
    yield session
    session.stop()
