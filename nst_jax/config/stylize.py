"""The schema of the ``stylize`` job: every field of an optimisation run, with its default.

Presets call :func:`base_config` and override what their source specifies, so every field
exists in every config and ``--config.FIELD=VALUE`` works for all of them. Layer lists and
per-layer weights are comma-separated strings so they can be overridden on the command line
(``--config.style_layers=conv1_1,conv3_1``). Defaults live only here; the checks of every field
(names of layers, losses, optimisers) are :func:`nst_jax.optimize.problem.validate`, run before
anything expensive happens. The machinery (locking, overrides, nearest-field errors) is
:mod:`nst_jax.config.schema`.
"""

from __future__ import annotations

import ml_collections

from nst_jax.config.schema import lock

JOBS_STYLIZE = 'stylize'
MODES = ('transfer', 'content_reconstruction', 'texture_synthesis')
INITS = ('content', 'noise', 'style', 'image', 'blend')
LAYER_WEIGHTINGS = ('uniform', 'geometric')


def base_config() -> ml_collections.ConfigDict:
  """Every field of the ``stylize`` job with its default (the one place defaults live)."""
  c = ml_collections.ConfigDict()
  # What to run.
  c.job = 'stylize'                # the job runner.run dispatches on (see nst_jax/jobs/stylize.py)
  c.mode = 'transfer'              # transfer | content_reconstruction | texture_synthesis
  c.content = ''                   # content image path (also --content)
  c.style = ''                     # style image path(s), comma separated (also --style)
  c.style_blend_weights = ''       # one weight per style image; '' = equal
  c.output = 'outputs/result.png'  # also --output
  # Image sizes.
  c.size = 512                     # longest side of the content image (px)
  c.height = 0                     # exact output height and width; 0 = from `size`
  c.width = 0
  c.style_scale = 1.0              # style image's longest side relative to the output's
  c.max_pixels = 40_000_000        # refuse larger source images (decompression-bomb guard)
  c.weights = ''                   # VGG19 weights (.h5 or converted .npz); '' = resolve (README)
  # Network.
  c.pooling = 'max'                # max | avg
  c.conv_impl = 'direct'           # direct | winograd2 | winograd4 | auto (CPU: winograd2)
  c.conv_dtype = 'float32'         # float32 | bfloat16 (operands of the VGG convolutions' products)
  # Loss.
  c.content_layers = 'block4_conv2'
  c.content_layer_weights = ''     # '' = 1/L each
  c.style_layers = 'block1_conv1,block2_conv1,block3_conv1,block4_conv1,block5_conv1'
  c.style_layer_weights = ''       # '' = 1/L each
  c.content_weight = 1.0
  c.style_weight = 1e3
  c.tv_weight = 0.0
  c.loss_norm = 'gatys'            # gatys | keras | tf_tutorial (see nst_jax/losses/terms.py)
  c.tv_type = 'l2'                 # l2 | l1 | keras
  c.loss_scale = 1.0               # objective multiplier seen by the optimiser only
  # The style term (nst_jax/losses/style.py, docs/guide/style_losses.md) and its options.
  c.style_loss = 'gram'            # gram | mean_std | mmd | cmd | histogram | sliced_wasserstein
  #                                  | mrf | strotss | nnst
  c.content_loss = 'mse'           # mse (Gatys) | self_similarity (STROTSS, Kolkin et al. 2019)
  c.mmd_kernel = 'poly'            # style_loss=mmd: linear | poly | gaussian (Li et al. 2017)
  c.mmd_c = 0.0                    # poly kernel (x.y + c)^2; c = 0 is the Gram loss
  c.cmd_order = 5                  # style_loss=cmd: highest central moment (Kalischek: 5)
  c.sw_projections = -1            # sliced_wasserstein: directions per layer; -1 = its channels
  c.mrf_patch_size = 3             # style_loss=mrf: feature patch size (Li & Wand 2016: 3)
  c.mrf_stride = 1                 # style_loss=mrf: stride between the style's patches
  c.style_samples = 1024           # positions sampled per step (mmd gaussian, strotss)
  c.image_range = 255.0            # the optimiser sees pixels in 0..image_range
  # Initialisation.
  c.init = 'content'               # content | noise | style | image | blend
  c.init_image = ''                # for init='image'
  c.init_noise_ratio = 0.6         # for init='blend': (1-r) * content + r * noise
  c.seed = 0
  # Optimisation.
  c.num_steps = 500
  c.optimizer = o = ml_collections.ConfigDict()
  o.name = 'lbfgs_torch'           # lbfgs_torch | lbfgs | adam | sgd | rmsprop | nadam
  o.learning_rate = 1.0
  o.schedule = 'constant'          # constant | exponential
  o.decay_steps = 100
  o.decay_rate = 0.96
  o.staircase = False
  o.b1 = 0.9                       # adam / nadam
  o.b2 = 0.999
  o.eps = 1e-8                     # adam / nadam / rmsprop
  o.momentum = 0.0                 # sgd / rmsprop
  o.rms_decay = 0.9                # rmsprop
  o.bf16_first_step = 0.0          # lbfgs_torch under bfloat16 convolutions: the first step moves
  #                                  the largest pixel by at least this (levels; 0: Torch's rule)
  o.history_size = 100             # lbfgs / lbfgs_torch (lbfgs_torch: capped at num_steps)
  o.history_dtype = 'float32'      # lbfgs_torch history storage: float32 | bfloat16 | float16
  o.max_linesearch_steps = 20      # lbfgs (optax zoom line search)
  # Logging, checkpoints and safety.
  c.log_every = 50                 # steps per jitted chunk; progress printed after each chunk
  c.save_every = 0                 # write an intermediate PNG every N steps (0 = never)
  c.resume = False                 # continue from the checkpoint beside the output, if any
  c.profile_dir = ''               # write a jax.profiler trace of the first chunk here
  # Compilation and memory (docs/guide/performance.md, docs/design/memory.md).
  c.compile_cache = ''             # '' = $NST_JAX_COMPILE_CACHE or ~/.cache/nst_jax/jax_cache; off
  c.remat = 'none'                 # recompute VGG blocks in the backward: none | all | early | 1,2
  c.memory_check = True            # estimate peak memory first; refuse (one line) if it cannot fit
  c.memory_limit_gb = 0.0          # memory the run may use; 0 = what the OS reports available
  c.spatial_shards = 1             # split the image's rows over this many devices (0 = all)
  # Perceptual control (Gatys et al. 2016) and Novak & Nikulin 2016 (see README.md).
  c.mask = ''                      # one region: white = styled, black = held to the content
  c.masks = ''                     # one mask per style image, comma separated (several regions)
  c.labels = ''                    # label image: one region per colour (sorted), one style each
  c.style_masks = ''               # per style image: a mask of the part to use ('' = all of it)
  c.preserve = True                # compose pixels no styled region covers from the content
  c.preserve_weight = 0.0          # hold term: weight of mean((x - content)^2) on those pixels
  c.color_control = 'none'         # none | luminance | match_style | original_colors
  c.color_match_mode = 'cholesky'  # cholesky | eigen (for color_control=match_style)
  c.stages = ''                    # coarse-to-fine 'SIZE:STEPS,...' ('256:200,512:100') or 'auto'
  c.scale_mix_layer = ''           # with 2 styles: layers >= this from style 1, shallower from 2
  c.gram_shift = 0.0               # activation shift in the Gram matrices (Novak: -1)
  c.chain = False                  # correlation chain between neighbouring style layers (Novak)
  c.layer_weighting = 'uniform'    # uniform | geometric (Novak: style falls, content rises)
  c.geometric_base = 2.0           # ratio between neighbouring layers' geometric weights
  # Sweeps (nst_jax/optimize/sweeps/): a non-empty `sweep.axes` turns the run into a batched grid.
  c.sweep = s = ml_collections.ConfigDict()
  s.axes = ''                      # 'FIELD=V1,V2;FIELD2=W1,W2' ('+' joins list items: layer sets)
  s.mode = 'product'               # product | zip
  s.rows = ''                      # contact-sheet row axes ('' = first axis of a product)
  s.max_batch = 16                 # configs per compiled batch; larger groups run in chunks
  s.shard = True                   # shard the batch axis over all devices
  s.distributed = False            # call jax.distributed.initialize() first (multi-host)
  # With distributed: '' / 0 / -1 = detected (SLURM, Open MPI, TPU pod); else process 0's
  # HOST:PORT, the process count and this process's index (docs/guide/distributed.md).
  s.coordinator = ''
  s.num_processes = 0
  s.process_id = -1
  s.connect_timeout = 300.0        # s to wait for every process (then one error line)
  s.cell_size = 256                # longest side of a contact-sheet thumbnail
  s.cost_analysis = True           # record XLA's FLOPs per step (one more lowering per group)
  c.output_dir = ''                # sweep output directory ('' = outputs/sweep; --output_dir)
  return lock(c)
