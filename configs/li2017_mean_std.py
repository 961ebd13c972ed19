"""Li, Wang, Liu & Hou 2017, "Demystifying Neural Style Transfer" (IJCAI; arXiv:1701.01036):
matching each channel's mean and standard deviation (the "BN statistics" loss, the linear-kernel
relative of the Gram loss).

  python run.py --config=configs/li2017_mean_std.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/li2017_mean_std.png

Typical time and harness result: docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                       # the paper's layers, pooling and init
  c.style_loss = 'mean_std'
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'  # code (lyttonhao/Neural-Style-MMD)
  c.content_layers = 'conv4_2'                     # code: relu4_2
  c.style_weight = 1.75e7  # ours: style/content gradient norms at the noise start as gatys2015's
  #                         (the code's scale: 250 x 5 x M_l ~ 1.6e7 at relu1_1 of 256 px)
  c.num_steps = 500                                # ours, as gatys2015 (the code: <= 1000, SGD)
  return c
