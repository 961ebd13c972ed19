"""Schema of the ``train`` job (feed-forward networks: Johnson 2016, Dumoulin 2017, AdaIN 2017).

Presets (``configs/johnson2016.py``, ``johnson2016_cpu.py``, ``dumoulin2017.py``,
``adain2017.py``) call :func:`train_config` and override what their source specifies; every field
exists in every training config, so ``--config.FIELD=VALUE`` works for all of them.
:func:`validate` checks a config before anything expensive happens.

The loss fields (``content_layers`` ... ``conv_impl``) mean exactly what they mean for the
``stylize`` job (:mod:`nst_jax.config.schema`): the Johnson/Dumoulin training loss is the project's
objective (:mod:`nst_jax.losses.objective`) applied to a batch.
"""

from __future__ import annotations

import ml_collections

from nst_jax.config import schema

NETWORKS = ('johnson', 'slim', 'adain', 'finetune', 'ghiasi_embedding')


def train_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.job = 'train'
  c.network = 'johnson'            # johnson | slim (models/transformer.py) | adain (models/adain)
  #                                  | finetune (new styles in a trained N-style network)
  c.style = ''                     # style image(s), comma separated (several: Dumoulin N-style)
  c.output = 'outputs/model'       # the model directory (model.npz + model.json, checkpoint, log)
  c.weights = ''                   # VGG19 weights (.h5 or converted .npz); '' = resolve (README)
  # Data.
  c.data_dir = '../shared/datasets/bsds500_trainval'  # content photos
  c.style_dir = '../shared/images/styles'  # AdaIN: style paintings (random crops)
  c.num_images = 0                 # use only the first N photos (0 = all)
  c.crop_size = 256                # square training crops (px)
  c.batch_size = 4
  c.scale_min = 1.0                # shorter side rescaled to crop * U(scale_min, scale_max)
  c.scale_max = 1.0
  c.flip = True                    # random left-right flips
  c.style_size = 256               # longest side of the style image(s) for the Gram targets
  c.max_pixels = 40_000_000
  # Network (johnson / slim: passed to nst_jax.models.transformer; adain: decoder width multiplier).
  c.net = n = ml_collections.ConfigDict()
  n.width = 1.0                    # adain: decoder width multiplier
  # johnson / slim: change the named layout ('' / -1 = as the layout has it), e.g.
  # --config.net.down_widths=16,32,64 --config.net.up_widths=32,16 --config.net.residual_blocks=3
  n.down_widths = ''               # first conv, then one stride-2 conv each (comma separated)
  n.residual_blocks = -1           # residual blocks at the last down width
  n.up_widths = ''                 # one nearest-x2 resize + 3x3 conv each
  n.output_activation = ''         # sigmoid | tanh | linear
  n.norm_last = ''                 # true | false: instance norm on the output conv
  n.use_bias = ''                  # true | false: conv biases
  # johnson / slim: how the training step computes the network. 'direct' (plain convolutions) or
  # 'fast' (the space-to-depth / sub-pixel reformulations inference uses; the same function). On
  # XLA:CPU 'fast' is 2.6x faster forward but its weight gradients are slow: forward + backward of
  # the slim net at 128 px, batch 4 took 2.0 s with 'fast' and 0.47 s with 'direct' (README).
  n.impl = 'direct'
  # finetune (training/tasks/finetune.py): the --style paintings appended to an N-style network.
  c.finetune = f = ml_collections.ConfigDict()
  f.model = ''                     # the N-style model directory to start from; '' = multistyle26
  f.train_all = False              # False: only the new styles' gamma/beta; True: kernels too
  f.init = 'mean'                  # the new rows: mean | nearest | identity (gamma 1, beta 0)
  # ghiasi_embedding (training/tasks/ghiasi_embedding.py): --output=STYLE.npz, a refined style.
  c.ghiasi_weights = ''             # Ghiasi .npz or ONNX folder; '' = resolve (models/ghiasi)
  # Loss (same meaning as the stylize job's fields, see nst_jax/config/schema.py).
  c.content_layers = 'relu3_3'
  c.content_layer_weights = ''
  c.style_layers = 'relu1_2,relu2_2,relu3_3,relu4_3'
  c.style_layer_weights = ''
  c.content_weight = 1.0
  c.style_weight = 5.0
  c.tv_weight = 1e-6
  c.loss_norm = 'tf_tutorial'
  c.tv_type = 'l2'
  c.pooling = 'max'
  c.conv_impl = 'auto'
  c.conv_dtype = 'float32'         # float32 | bfloat16: the VGG19 loss network's product operands
  # adain (training/tasks/adain.py): first train the decoder to invert relu4_1 (Li et al. 2017's
  # decoder loss), then the AdaIN loss; pretrain_steps >= num_steps: a reconstruction decoder only.
  c.adain = a = ml_collections.ConfigDict()
  a.pretrain_steps = 0             # the first N steps reconstruct the photos (0 = AdaIN loss only)
  a.pixel_weight = 1.0             # pixel MSE in 0..1 units (WCT-TF's train.py default: 1)
  a.feature_weight = 1.0           # relu4_1 MSE, normalised-VGG units (WCT-TF's default: 1)
  # Optimisation (optax Adam).
  c.num_steps = 40_000
  c.learning_rate = 1e-3
  c.lr_decay = 0.0                 # lr / (1 + lr_decay * step) (AdaIN's authors: 5e-5)
  c.b1 = 0.9
  c.b2 = 0.999
  c.seed = 0
  c.max_minutes = 0.0              # stop (saving model + checkpoint) after this much wall time
  # Loop, logging, checkpoints.
  c.chunk = 10                     # train steps per jitted call (one lax.scan); one log record each
  c.prefetch = 2                   # chunks of batches prepared ahead by the loader thread
  c.sample_every = 1000            # stylize sample_image every N steps (0 = never)
  c.sample_image = '../shared/images/tubingen.jpg'
  c.sample_size = 256
  c.save_every = 500               # checkpoint + model every N steps (and at the end)
  c.resume = False                 # continue from OUTPUT/checkpoint.npz
  c.shard = True                   # shard the batch axis over every device
  # Several processes (hosts), data-parallel (docs/guide/distributed.md): jax.distributed
  # with the cluster detected (SLURM, Open MPI, TPU pod) or an explicit coordinator.
  c.distributed = False
  c.coordinator = ''               # process 0's HOST:PORT ('' = detected)
  c.num_processes = 0              # 0 = detected
  c.process_id = -1                # -1 = detected
  c.connect_timeout = 300.0        # s to wait for every process (then one error line)
  c.progress = 'bar'               # bar | log | none
  return schema.lock(c)


def style_paths(config: ml_collections.ConfigDict) -> list[str]:
  """The training config's style images (``style``, comma separated)."""
  return schema.split_list(config.style)
