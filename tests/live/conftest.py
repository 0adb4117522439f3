"""The fault tests' private-server fixtures, for the test that runs `sampling serve`."""

from tests.faults.conftest import own_server, short_dir

__all__ = ["own_server", "short_dir"]
