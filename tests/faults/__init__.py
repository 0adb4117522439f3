"""Fault-injection tests: each claim of docs/guarantees.md, proved by breaking something."""
