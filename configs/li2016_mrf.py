"""Li & Wand 2016, "Combining Markov Random Fields and Convolutional Neural Networks for Image
Synthesis" (CNNMRF, CVPR): every 3x3 patch of relu3_1 and relu4_1 is pulled to its nearest style
patch (normalised cross-correlation), coarse to fine.

  python run.py --config=configs/li2016_mrf.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/li2016_mrf.png

Not in ours: CNNMRF's rotated and scaled copies of the style patches. Typical time and harness
result: docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'mrf'
  c.style_layers = 'conv3_1,conv4_1'               # code (run_trans.lua): Torch layers 12, 21
  c.mrf_patch_size = 3                             # paper and code: 3x3 patches
  c.mrf_stride = 2                                 # code: stride 2 on image and style
  c.content_layers = 'conv4_2'                     # code: layer 23
  c.loss_norm = 'tf_tutorial'                      # code: nn.MSECriterion (mean) for content
  c.content_weight = 20.0                          # code: content weight 20
  c.style_weight = 2e-4                            # code: 1e-4 per layer (ours: 1/L each of 2)
  c.tv_type = 'l2'                                 # code: 1e-3 * 0.5 sum(dx^2 + dy^2)
  c.tv_weight = 5e-4
  c.pooling = 'max'                                # code: the Caffe VGG19 (max pooling)
  c.init = 'content'                               # code: starts from the content image
  c.optimizer.name = 'lbfgs_torch'                 # code: L-BFGS without line search, step 1
  c.optimizer.history_size = 25                    # code: nCorrection 25
  c.stages = '96:100,192:100,384:100'              # code: 3 resolutions, 100 iterations each
  c.size = 384                                     # code: the last stage's long side
  c.num_steps = 300                                # the stages' sum
  return c
