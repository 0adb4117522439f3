"""Locust load test of a whole round."""
