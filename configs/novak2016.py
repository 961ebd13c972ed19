"""Novak & Nikulin 2016, "Improving the Neural Algorithm of Artistic Style" (arXiv:1605.04603).

Their improvements over Gatys et al. 2015, all on:
  * style and content on the same layers: all 16 conv layers of VGG19 (paper, Sec. 3.1);
  * geometric layer weights: style weight halving, content weight doubling with depth
    (w_s ~ 2^(D - d), w_c ~ 2^d; normalised here to sum to 1);
  * shifted activations in the Gram matrices, G = (F - 1)(F - 1)^T (gram_shift = -1);
  * the correlation chain: cross Grams of neighbouring layers instead of per-layer Grams (the
    finer of two maps is average-pooled to the coarser one's size).

  python run.py --config=configs/novak2016.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/novak.png

Typical time (2-core CPU, whole process, warm compilation cache): 54 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.329, content distance 0.893, CFSD 0.700, SSIM 0.484.
"""

from configs import gatys2015

ALL_CONV = ','.join(f'conv_{i}' for i in range(1, 17))


def get_config():
  c = gatys2015.get_config()                            # the algorithm it builds on
  c.content_layers = ALL_CONV                           # paper: content and style on all layers
  c.style_layers = ALL_CONV
  c.layer_weighting = 'geometric'                       # paper: geometric layer weights
  c.geometric_base = 2.0
  c.gram_shift = -1.0                                   # paper: activation shift
  c.chain = True                                        # paper: correlation chain
  c.style_weight = 1e2                                  # balanced at 512 px (~10 at 96 px)
  c.init = 'content'
  return c
