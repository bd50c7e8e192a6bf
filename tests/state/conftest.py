from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omnisync.state import LedgerStore
from tests.state.backends import BACKENDS, StoreBackend


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    backend: StoreBackend = BACKENDS[request.param](tmp_path)
    return backend


@pytest.fixture
def store(backend: StoreBackend) -> Iterator[LedgerStore]:
    opened = backend.open()
    yield opened
    opened.close()
