"""Host side of the QEMU target: test-kernel build, guest boot and console reading.

Stdlib only, like the rest of ``conformance``; ``arch`` holds everything that
differs between guest architectures so that the architecture stays one parameter.
"""
