"""Conformance: check another party's endpoint against the UFTP spec (:mod:`.runner`,
:mod:`.checks`, :mod:`.report`), and a counterparty that behaves by a scenario
(:mod:`.scenario`, :mod:`.simulator`). See docs/conformance.rst."""
