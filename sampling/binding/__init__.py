"""binding domain package."""
