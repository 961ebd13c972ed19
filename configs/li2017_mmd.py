"""Li, Wang, Liu & Hou 2017, "Demystifying Neural Style Transfer" (IJCAI; arXiv:1701.01036):
the style term as a maximum mean discrepancy between feature distributions.

  python run.py --config=configs/li2017_mmd.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/li2017_mmd.png \
      [--config.mmd_kernel=linear|poly|gaussian]

The Gram loss is an MMD with the kernel (x.y)^2 (``mmd_kernel=poly``, ``mmd_c=0``); the linear
kernel matches the feature means; the gaussian kernel, sampled on ``style_samples`` positions per
step, all moments. Typical time and harness result: docs/results/2026-12-03-style-losses.md.
"""

from configs import gatys2015


def get_config():
  c = gatys2015.get_config()                       # the paper's layers, pooling and init
  c.style_loss = 'mmd'
  c.mmd_kernel = 'gaussian'                        # the paper's third kernel (linear, poly: flags)
  c.mmd_c = 0.0                                    # paper: poly kernel with c = 0 (= Gram)
  c.style_samples = 1024                           # ours: positions per step (a full M x M
  #                                                  kernel matrix at relu1_1 does not fit)
  c.style_layers = 'conv1_1,conv2_1,conv3_1,conv4_1,conv5_1'  # code (lyttonhao/Neural-Style-MMD)
  c.content_layers = 'conv4_2'                     # code: relu4_2
  c.style_weight = 5.33e13  # ours: 1/10 of the weight matching gatys2015's gradient norms at the
  #   noise start (5.33e14), with which L-BFGS on the sampled loss never left the noise (256 px,
  #   54 steps, 100007 x La_forma: style 3.36, CFSD 4.62; at 5.33e13: 0.685 / 0.553;
  #   docs/results/2026-12-03-style-losses.md). The code's scale: 3.75e13 x 5 = 1.9e14.
  c.num_steps = 500                                # ours, as gatys2015 (the code: <= 1000, SGD)
  return c
