"""Kolkin, Kalogerakis, Shechtman & Shakhnarovich 2022, "Neural Neighbor Style Transfer" (NNST):
every image feature is pulled to its nearest style feature under the centred cosine distance, per
layer of conv1_1 .. conv4_3 (the code's final, "feature splitting" pass).

  python run.py --config=configs/kolkin2022.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/kolkin2022.png

Not in ours (nst_jax/losses/neighbors.py): NNST's hypercolumn passes with targets gathered once
from the content image, its Laplacian-pyramid parametrisation, rotated style copies and final
colour transfer, its coarse-to-fine schedule. As in the code, no content loss: the photo is the
start and few steps keep it. Typical time: 14-17 s at 256 px on the 2-core CPU (35 steps, 1.78x
a gatys2015 evaluation). Harness on 4 pairs at equal time with gatys2015@60: Gram distance 0.71
against 0.49, CFSD 0.22 against 2.66, SSIM 0.76 against 0.03 (docs/results/2026-12-06-nnst.md).
"""

from configs import gatys2015

# The code's feature_list_final of VGG16 by name (conv4_3 exists in VGG19 too): conv1_1..conv4_3,
# "dropping conv5 block speeds up method without hurting quality".
LAYERS = 'conv1_1,conv1_2,conv2_1,conv2_2,conv3_1,conv3_2,conv3_3,conv4_1,conv4_2,conv4_3'


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'nnst'
  c.style_layers = LAYERS                          # code: feature_list_final
  c.style_weight = 10.0                            # code: the layers' distances summed (ours:
  #                                                  1/L each of 10, so 10 x their mean)
  c.content_weight = 0.0                           # code: no content loss by default
  #                                                  (ours: 1e-10 of the Gatys term at conv4_2
  #                                                  held the style at 3.5 against 2.1 without)
  c.pooling = 'max'                                # code: torchvision VGG16 (max pooling)
  c.init = 'content'                               # code: the content image's low frequencies
  c.optimizer.name = 'adam'                        # code: Adam (on a Laplacian pyramid, lr 2e-3
  c.optimizer.learning_rate = 1.0                  #   of 0..1). Ours, on pixels of 0..255: at 35
  #                                                  steps 0.3 barely moves the photo (harness
  #                                                  Gram distance 0.80), 1.0 gives 0.71; 100
  #                                                  steps at 1.0 lost Tubingen's houses
  c.stages = ''                                    # ours: one scale keeps the houses, 128:20,256:20
  c.size = 256                                     #   lost the small ones (code: 4 x 200 to 512 px)
  c.num_steps = 35                                 # ours: gatys2015's 60 steps' time at 256 px
  return c
