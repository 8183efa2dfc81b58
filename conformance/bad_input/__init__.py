"""Bad input at volume: generated invalid arguments for every exporter's uapi.

``generator.generate(kind, n, seed)`` makes the inputs on the host
(``inputs.Input``, each with the category of rule it breaks); a target runs a
batch of them with ``Target.bad_input_batch`` and answers one errno per input
(0: accepted).  The real kernel's answers come from ``local.run_batch``
(inside the QEMU guest, next to the agent: no round trip per input); the
reference model's from ``conformance.targets.model_parts.bad_input``.
``compare.compare`` lines the two up per input and per category.
"""

from conformance.bad_input.inputs import Input

__all__ = ["Input"]
