"""Redis plumbing shared by the domain packages: the embedded server, clients, scripts."""
