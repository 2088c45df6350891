"""pyuftp.sending: see docs/architecture.rst."""
