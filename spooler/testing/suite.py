"""All the conformance tests in one class, for a plugin that runs them all."""

from __future__ import annotations

from .delivery import DeliveryTests
from .processing import ProcessingTests
from .reading import ReadingTests
from .sequence import SequenceTests


class TransportSuite(DeliveryTests, ReadingTests, SequenceTests, ProcessingTests):
    """Every area of the kit; subclass and provide ``queue_location``."""
