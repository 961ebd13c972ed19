"""Texture synthesis (Gatys, Ecker & Bethge 2015, "Texture Synthesis Using CNNs"): style loss only.

  python run.py --config=configs/texture_synthesis.py --style=../shared/images/starry_night.jpg \
      --output=outputs/texture.png
"""

from nst_jax.config import load_preset


def get_config():
  c = load_preset('gatys2015')                          # the algorithm it builds on
  c.mode = 'texture_synthesis'                          # no content term
  c.style_weight = 1.0
  c.content_weight = 0.0
  c.size = 256
  return c
