"""Offline evaluation: the metrics papers report, computed the same way for every method
(:mod:`nst_jax.evaluation.metrics`), and the adapters of learned metrics whose weights the user
supplies (:mod:`nst_jax.evaluation.learned`)."""
