"""boxing domain package."""
