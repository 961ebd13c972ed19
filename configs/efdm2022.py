"""Exact feature distribution matching: each channel's sorted activations are pulled onto the
painting's (Zhang, Zhu, Sun, Lin & Luo 2022, "Exact Feature Distribution Matching for Arbitrary
Style Transfer and Domain Generalization", CVPR; the exact, unbinned form of Risser, Wilmot &
Barnes 2017's histogram loss).

  python run.py --config=configs/efdm2022.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/efdm2022.png

Typical time: 0.22 s per step at 256 px on the 2-core EPYC with the native sort (0.89x
gatys2015's; 500 steps about 2 minutes). Harness at gatys2015@60's time (72 steps, 4 pairs):
style distance 0.298 against 0.490, colour SWD 9.65 against 12.2, content 1.55 against 1.72
(docs/results/2026-12-07-native-sort.md; earlier: 2026-12-03-style-losses.md).
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
