"""The accelerator suite (``python -m nst_jax.bench.accelerator``): every GPU/TPU target in one
process, one JSON line per target, within 8 minutes; ``--smoke`` runs the same code paths at tiny
sizes on any device (CI runs it on the CPU).

Targets (:data:`nst_jax.bench.accelerator.targets.TARGETS`, in the order they run):

* ``lbfgs_500``: 500 L-BFGS evaluations of the gatys2015 preset at 512 px (s);
* ``sweep_k8``, ``sweep_k32``: K configurations in one vmapped program against K sequential runs
  (speedup);
* ``fast_1024``, ``ghiasi_1024``: the built-in 26-style network and Ghiasi et al.'s at 1024x1024
  (ms per image, warm);
* ``video_1080p``: the fast job on a video at 1080p (frames/s, decode and encode included);
* ``train_johnson2016``: training steps/s of configs/johnson2016.py, and the minutes of its 40k
  steps;
* ``max_image``: the largest gatys2015 image the memory estimate allows on one device, confirmed
  by a few real steps (px), and its seconds per evaluation.

Each line: ``{"target", "value", "unit", "goal", "goal_source", "met", "device", "size",
"seconds", "smoke", ...}``. Modules: :mod:`.inputs` (sizes, weights, media), :mod:`.targets`
(one function per target, on the benchmarks of :mod:`nst_jax.bench`), ``__main__`` (the CLI).
Guide: docs/guide/accelerator.md.
"""
