"""Exact feature distribution matching: each channel's sorted activations are pulled onto the
painting's (Zhang, Zhu, Sun, Lin & Luo 2022, "Exact Feature Distribution Matching for Arbitrary
Style Transfer and Domain Generalization", CVPR; the exact, unbinned form of Risser, Wilmot &
Barnes 2017's histogram loss).

  python run.py --config=configs/efdm2022.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/efdm2022.png

Typical time and harness result: docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'histogram'
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1'  # EFDM code (net.py): relu1_1..relu4_1
  c.content_layers = 'conv4_2'                     # ours, as gatys2015 (EFDM trains a decoder)
  c.style_weight = 1.39e7  # ours: style/content gradient norms at the noise start as gatys2015's
  c.num_steps = 500                                # ours, as gatys2015
  return c
