"""Devices, their roles and hashed tokens."""
