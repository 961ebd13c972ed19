"""Scale control (Gatys et al. 2016, Sec. 5): coarse-to-fine synthesis.

A first stage at low resolution settles the large-scale structure cheaply; each later stage
starts from the previous result, upsampled, and refines it at a higher resolution. Runs as is
from the project root:

  python run.py --config=configs/coarse_to_fine.py --output=outputs/coarse_to_fine.png

Stages are 'SIZE:STEPS' (longest side in pixels), e.g. --config.stages=256:300,512:100,1024:50.

Typical time (2-core CPU, whole process, warm compilation cache): 29 s for 128:75,256:25 stages
(tubingen x starry_night). Harness-measured (docs/results/2026-12-03-presets.md):
style distance 0.383, content distance 1.362, CFSD 0.984, SSIM 0.067.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                            # Gatys et al. 2015 settings
  c.content = '../shared/images/tubingen.jpg'
  c.style = '../shared/images/starry_night.jpg'
  c.stages = '256:200,512:100'                          # overrides size and num_steps
  c.init = 'noise'                                      # where the coarse stage helps most
  c.log_every = 50
  return c
