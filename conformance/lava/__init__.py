"""The suite under LAVA: the DUT image, the job and device dictionary of ``lava/``, and
``lava-run``'s recorded results (``python -m conformance.lava``; ``tox -e lava``)."""
