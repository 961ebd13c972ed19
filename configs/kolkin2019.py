"""Kolkin, Salavon & Shakhnarovich 2019, "Style Transfer by Relaxed Optimal Transport and Self-
Similarity" (STROTSS, CVPR): a relaxed earth mover's distance between sampled hypercolumns
(cosine cost) with moment and colour terms, and a self-similarity content loss, coarse to fine.

  python run.py --config=configs/kolkin2019.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/kolkin2019.png

Not in ours: the code's Laplacian-pyramid parametrisation of the image (with RMSprop) and its
per-stage halving of the content weight (16, 8, 4, 2): the weights below are the second
stage's, for every stage (the third's, cw = 4, lost the photo at 128 px by eye). Typical time
and harness result: docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015

# The code's HYPERCOLUMN_LAYERS of VGG16 by name (conv4_3, conv5_3 exist in VGG19 too).
LAYERS = 'conv1_1,conv1_2,conv2_1,conv2_2,conv3_1,conv3_2,conv3_3,conv4_3,conv5_3'


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'strotss'
  c.content_loss = 'self_similarity'               # paper, Sec. 2.2
  c.style_layers = LAYERS                          # code: one hypercolumn for style and content
  c.content_layers = LAYERS
  c.style_samples = 1024                           # code: cnt = 32**2 positions per step
  c.content_weight = 8.0 / 10.0                    # code: cw / (cw + 2), cw = 16 alpha / 2
  c.style_weight = 1.0 / 10.0                      # code: 1 / (cw + 2)
  c.pooling = 'max'                                # code: torchvision VGG16 (max pooling)
  c.init = 'content'                               # ours (code: content band + style colour)
  c.optimizer.name = 'adam'                        # ours: Adam on pixels (code: RMSprop on a
  c.optimizer.learning_rate = 1.0                  #   Laplacian pyramid, lr 2e-3 of 0..1)
  c.stages = '64:250,128:250,256:250,512:250'      # code: 4 scales, 250 steps each (MAX_ITER)
  c.size = 512                                     # code: the last scale's long side
  c.num_steps = 1000                               # the stages' sum
  return c
