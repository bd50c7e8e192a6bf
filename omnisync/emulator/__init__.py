"""A faithful local Omnisend (API version 2026-03-15) for tests, the demo and the benchmark.

``Emulator`` is the entry point; ``Faults`` configures injected failures.
"""

from omnisync.emulator.contacts import StatusChange, WelcomeMessage
from omnisync.emulator.faults import Faults
from omnisync.emulator.server import Emulator
from omnisync.emulator.state import RequestRecord, Settings

__all__ = ["Emulator", "Faults", "RequestRecord", "Settings", "StatusChange", "WelcomeMessage"]
