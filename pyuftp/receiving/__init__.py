"""pyuftp.receiving: see docs/architecture.rst."""
