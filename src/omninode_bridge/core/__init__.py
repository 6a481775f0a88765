"""Infrastructure shared by every module: database, errors, observability, Redis, module registry."""
