"""pyuftp.core: see docs/architecture.rst."""
