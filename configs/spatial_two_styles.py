"""Spatial control (Gatys et al. 2016, Sec. 3): a different style in each region of the content.

The portrait mask doubles as a two-colour label image: its black region (background) takes the
first style image, its white region (the person) the second. Runs as is from the project root:

  python run.py --config=configs/spatial_two_styles.py --output=outputs/two_styles.png

Two mask files instead of a label image: --masks=bg.png,person.png --style=a.jpg,b.jpg; a style
of 'none' keeps its region from the content.

Typical time (2-core CPU, whole process, warm compilation cache): 54 s for 256 px, 100 steps
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.485, content distance 1.129, CFSD 0.630, SSIM 0.435.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                            # Gatys et al. 2015 settings
  c.content = '../shared/images/brad_pitt.jpg'
  c.style = '../shared/images/starry_night.jpg,../shared/images/picasso_selfport1907.jpg'
  c.labels = '../shared/images/brad_pitt_mask.png'     # black -> style 1, white -> style 2
  c.init = 'content'
  c.num_steps = 300
  c.size = 384
  return c
