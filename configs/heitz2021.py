"""Heitz, Vanhoey, Chambon & Belcour 2021, "A Sliced Wasserstein Loss for Neural Texture
Synthesis" (CVPR): random 1-D projections of the features, sorted and matched; the directions
are redrawn every step from the key the optimiser state carries (reproducible, resumable).

  python run.py --config=configs/heitz2021.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/heitz2021.png

Texture synthesis (the paper's use): configs/heitz2021_texture.py. Typical time: 0.42 s per
step at 256 px on the 2-core EPYC with the native sort (1.7x gatys2015's: 14 layers). Harness at
gatys2015@60's time (38 steps, 4 pairs): style distance 0.400 against 0.490, content 1.61
against 1.72, colour SWD 14.1 against 12.2 (docs/results/2026-12-07-native-sort.md; earlier:
2026-12-03-style-losses.md).
"""

from configs import gatys2015

# The TensorFlow code (texturegen.py): every conv layer from block1_conv1 to block5_conv2.
LAYERS = ('conv1_1,conv1_2,conv2_1,conv2_2,conv3_1,conv3_2,conv3_3,conv3_4,'
          'conv4_1,conv4_2,conv4_3,conv4_4,conv5_1,conv5_2')


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'sliced_wasserstein'
  c.sw_projections = -1                            # paper and code: as many as the channels
  c.style_layers = LAYERS
  c.content_layers = 'conv4_2'                     # ours, as gatys2015 (the paper: textures)
  c.style_weight = 1.2e7  # ours: style/content gradient norms at the noise start as gatys2015's
  c.optimizer.name = 'lbfgs_torch'                 # code: L-BFGS
  c.num_steps = 500                                # ours, as gatys2015 (the code: 20 x 64 evals)
  return c
