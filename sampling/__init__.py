"""sampling: sample tracking for city-scale mass testing."""

__version__ = "0.1.0"
