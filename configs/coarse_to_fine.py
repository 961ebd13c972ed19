"""Scale control (Gatys et al. 2016, Sec. 5): coarse-to-fine synthesis.

A first stage at low resolution settles the large-scale structure cheaply; each later stage
starts from the previous result, upsampled, and refines it at a higher resolution. Runs as is
from the project root:

  python run.py --config=configs/coarse_to_fine.py --output=outputs/coarse_to_fine.png

Stages are 'SIZE:STEPS' (longest side in pixels), e.g. --config.stages=256:300,512:100,1024:50.
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
