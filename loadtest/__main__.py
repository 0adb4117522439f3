"""``python -m loadtest --residents N``."""

from loadtest.cli import loadtest

loadtest(prog_name="python -m loadtest")
