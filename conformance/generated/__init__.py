"""GEN-001's bookkeeping that needs no hypothesis: divergence classes and findings.

``classes`` names a divergence by the contract, operation and kind of
difference (``sync-dma-calls``, ``mmap-errno``, ``zero-fill-data``,
``sync-direction``); ``findings`` keeps the shortest reproducer of each class
and the time spent exploring and shrinking.  The hypothesis state machine that
produces them is ``fixtures/generated_machine.py`` (hypothesis is a test
dependency; this package stays stdlib-only like the rest of ``conformance``).
"""
