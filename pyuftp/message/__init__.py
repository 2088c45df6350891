"""pyuftp.message: see docs/architecture.rst."""
