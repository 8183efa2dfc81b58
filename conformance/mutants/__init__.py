"""Mutation testing of the real exporters: patches in qemu/mutants/, the sweep, the kill matrix."""
