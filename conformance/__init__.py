"""dmabuf-conformance: a conformance suite for Linux dma-buf exporters."""

__version__ = "0.1.0"
