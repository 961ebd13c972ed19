"""The schema of the ``benchmark`` job (configs/benchmark.py, benchmark_cpu.py): every method on
every (content, style) pair of two folders, with the evaluation metrics, a per-method summary and
a contact sheet. Validation (method names, metric names) is the job's,
:func:`nst_jax.jobs.benchmark.validate`.

``methods`` is a comma-separated list; each entry is one of

* ``PRESET``: an optimisation preset of ``configs/`` (``gatys2015``, ``novak2016``, ...), run for
  ``steps`` steps (0 = the preset's own ``num_steps``) at ``size``;
* ``fast`` / ``fast:INDEX``: style INDEX of the built-in 26-style network (default 0);
  ``fast:MODEL_DIR`` / ``fast:MODEL_DIR:INDEX``: a trained model directory;
* ``ghiasi``: Ghiasi et al. 2017 (weights: ``ghiasi_weights``);
* ``adain``: AdaIN (decoder: ``adain_model``).
"""

from __future__ import annotations

import ml_collections

from nst_jax.config import schema
from nst_jax.io import images as image_io


def benchmark_config() -> ml_collections.ConfigDict:
  """The schema (and defaults) of the ``benchmark`` job; the presets override it."""
  c = ml_collections.ConfigDict()
  c.job = 'benchmark'
  # What to run.
  c.content = ''                # folder of content photos, or one photo (--content)
  c.style = ''                  # folder of style images, or one image (--style)
  c.max_contents = 0            # the first N content images (by name); 0 = all
  c.max_styles = 0              # the first N style images (by name); 0 = all
  c.methods = 'gatys2015,fast:0,ghiasi,adain'  # comma separated (see the module docstring)
  c.metrics = ''                # comma separated subset of the evaluation metrics; '' = all
  # Learned metrics over each method's outputs (FID, LPIPS, ArtFID; nst_jax.evaluation.learned):
  # 'NAME[=PATH],...' of fid_inception, art_inception, lpips_vgg, lpips_alex, with weights the
  # user converted (docs/guide/evaluation.md); '' = none. 'NAME=SHA256,...' replaces the
  # official hash check of the file converted from.
  c.learned = ''
  c.learned_sha256 = ''
  c.size = 512                  # longest side of every content and style image, every method
  c.steps = 300                 # optimisation presets' num_steps; 0 = each preset's own
  # Weights ('' = the defaults each method resolves by itself).
  c.weights = ''                # VGG19 (.h5 or converted .npz): optimisation, AdaIN, metrics
  c.ghiasi_weights = ''         # Ghiasi: converted .npz or a folder with the two ONNX files
  c.adain_model = ''            # AdaIN decoder directory; '' = the shipped weights/adain_decoder
  c.max_pixels = image_io.DEFAULT_MAX_PIXELS  # refuse larger source images
  # Output.
  c.output_dir = ''             # results, summary, contact sheet, images ('' = outputs/benchmark)
  c.bootstrap_resamples = 1000  # summary: resamples of the pairs for the 95% interval
  c.bootstrap_seed = 0          # summary: the resampling's seed (fixed: the same interval again)
  c.sheet_pairs = 20            # contact sheet: its first N pairs as rows (0 = all)
  c.sheet_metrics = ''          # contact sheet: the metrics under each cell; '' = the first 3
  c.cell_size = 128             # contact sheet: longest side of a thumbnail
  c.compile_cache = ''          # '' = $NST_JAX_COMPILE_CACHE or ~/.cache/nst_jax/jax_cache; off
  c.quiet = False               # no progress lines
  # Several processes (hosts): each runs its share of the pairs, process 0 writes the report.
  c.distributed = False         # call jax.distributed.initialize() first
  c.coordinator = ''            # host:port of process 0; '' = detect the cluster (SLURM, MPI...)
  c.num_processes = 0           # with coordinator: how many processes
  c.process_id = -1             # with coordinator: this process's index
  c.connect_timeout = 300.0     # seconds for every process to reach the coordinator
  return schema.lock(c)
