"""The HTTP layer: it authenticates, translates JSON to domain calls and back, and maps
errors to problem details. Rules live in the domain packages."""
