"""The local transport passes the transport conformance kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from spooler.testing import TransportSuite


class TestLocalPath(TransportSuite):
    @pytest.fixture
    def queue_location(self, tmp_path: Path) -> str:
        return str(tmp_path / "queue")


class TestLocalFileURL(TransportSuite):
    @pytest.fixture
    def queue_location(self, tmp_path: Path) -> str:
        return (tmp_path / "queue").as_uri()
