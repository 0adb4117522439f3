"""scan domain package."""
