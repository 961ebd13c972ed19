"""Dumoulin, Shlens & Kudlur (2017), "A Learned Representation for Artistic Style" (ICLR 2017,
arXiv:1610.07629): ONE network for N styles through conditional instance normalisation (one
gamma/beta row per style and layer); styles mix convexly at inference.

  python run.py --config=configs/dumoulin2017.py \
      --style=../shared/images/styles/candy.jpg,../shared/images/styles/mosaic.jpg,../shared/images/styles/udnie.jpg \
      --output=outputs/three_styles

Each batch element trains a seeded random style. Then: python run.py --config=configs/fast.py
--model=outputs/three_styles --config.style_index=1 --content=PHOTO --output=out.png.
"""

from nst_jax.config.schema import load_preset


def get_config():
  c = load_preset('johnson2016')   # the same perceptual loss and weights (see that preset)
  c.network = 'slim'               # the published 26-style network's layout (multistyle26.onnx)
  c.crop_size = 256                # Magenta image_stylization_train.py default image_size 256
  c.batch_size = 16                # Magenta image_stylization_train.py default batch_size 16
  c.learning_rate = 1e-3           # Magenta image_stylization_train.py default learning_rate 1e-3
  c.num_steps = 40_000             # Magenta image_stylization_train.py default train_steps 40000
  c.style = ''                     # several --style images, comma separated (N >= 2)
  return c
