"""pyuftp.types: see docs/architecture.rst."""
