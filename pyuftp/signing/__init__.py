"""pyuftp.signing: see docs/architecture.rst."""
