"""Kalischek, Wegner & Schindler 2021, "In the light of feature distributions: moment matching
for neural style transfer" (CVPR): the central moment discrepancy (CMD) up to order K = 5 of
sigmoid-bounded features.

  python run.py --config=configs/kalischek2021.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/kalischek2021.png

Their code bounds the pre-ReLU conv outputs with a sigmoid; ours sees the post-ReLU features (the
extractor's), so sigmoid(max(z, 0)). Typical time and harness result:
docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()
  c.style_loss = 'cmd'
  c.cmd_order = 5                                  # paper and code: K = 5
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'  # code (cmd_styletransfer)
  # code: layer weights 1e3 / C^2, here normalised to sum to 1.
  c.style_layer_weights = '0.7442,0.1860,0.0465,0.0116,0.0116'
  c.content_layers = 'conv4_1'                     # code: relu4_1
  c.loss_norm = 'tf_tutorial'                      # code: content = mean squared error
  c.pooling = 'max'                                # code: torchvision's VGG19 (max pooling)
  c.init = 'content'                               # code: starts from the content image
  c.style_weight = 5.35e6  # ours: 1/10 of the weight matching gatys2015's style/content gradient
  #   norms at the noise start (5.35e7), which from the content start destroyed the photo under
  #   L-BFGS (256 px, 59 steps, 100007 x La_forma: CFSD 13.2, style 3.96; at 5.35e6 0.474 / 0.536,
  #   at 5.35e5 0.114 / 0.697; docs/results/2026-12-03-style-losses.md)
  c.optimizer.name = 'lbfgs_torch'                 # ours (the code: Adam, lr 0.1 normalised)
  c.num_steps = 500                                # ours (the code: <= 1000 with early stop)
  return c
