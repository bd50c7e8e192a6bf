"""omnisync: keeps Omnisend contacts in step with customer segments, driven by YAML in git."""

__version__ = "0.1.0"
