"""pyuftp.server: see docs/architecture.rst."""
