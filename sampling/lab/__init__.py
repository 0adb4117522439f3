"""lab domain package."""
