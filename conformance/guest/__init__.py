"""The in-guest side of the QEMU target: the agent and its wire protocol (stdlib only)."""
