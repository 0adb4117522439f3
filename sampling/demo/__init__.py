"""The demo: a synthetic district sampled through the real API."""
