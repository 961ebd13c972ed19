"""Content reconstruction (Gatys et al. 2015, Fig. 1 top row): content loss only, from noise.

  python run.py --config=configs/content_reconstruction.py \
      --content=../shared/images/tubingen.jpg --output=outputs/recon.png \
      --config.content_layers=conv2_2

Typical time (2-core CPU, whole process, warm compilation cache): 32 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.692, content distance 0.577, CFSD 0.673, SSIM 0.117.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                            # the algorithm it builds on
  c.mode = 'content_reconstruction'                     # no style term
  c.style_weight = 0.0
  c.size = 256
  return c
