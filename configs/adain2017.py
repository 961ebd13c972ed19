"""Huang & Belongie (2017), "Arbitrary Style Transfer in Real-time with Adaptive Instance
Normalization" (ICCV 2017, arXiv:1703.06868): train the decoder (the encoder is our VGG19 up to
relu4_1) on content photos and a folder of paintings; then any painting works at inference.

  python run.py --config=configs/adain2017.py --output=outputs/adain_decoder

A short CPU run (see README, AdaIN): add --config.crop_size=128 --config.batch_size=4
--config.max_minutes=10 --config.learning_rate=5e-4. Inference: nst_jax.models.adain.stylize (or
configs/arbitrary.py with method=adain).
"""

from nst_jax.config.train import train_config


def get_config():
  c = train_config()
  c.network = 'adain'              # nst_jax/models/adain.py: VGG19 relu4_1 encoder, AdaIN, mirrored decoder
  c.style = ''                     # styles come from style_dir (random crops), not --style
  c.style_dir = '../shared/images/styles'  # ours (the paper: WikiArt, ~80k paintings)
  c.crop_size = 256                # Sec. 6: random 256x256 crops
  c.scale_min, c.scale_max = 2.0, 2.0  # Sec. 6: smallest dimension resized to 512 = 2 x 256
  c.batch_size = 8                 # Sec. 6: batch of 8 content-style pairs
  c.learning_rate = 1e-4           # authors' PyTorch code (train.py) default lr 1e-4
  c.lr_decay = 5e-5                # authors' PyTorch code: lr / (1 + 5e-5 * iteration)
  c.num_steps = 160_000            # authors' PyTorch code default max_iter 160000
  c.style_weight = 10.0            # Sec. 6: lambda = 10 (authors' code default style_weight 10)
  c.content_weight = 1.0           # Sec. 6 (content loss unweighted)
  c.conv_impl = 'auto'             # ours: VGG convolutions (Winograd on CPU)
  c.chunk = 10                     # ours
  c.sample_every = 1000            # ours
  c.save_every = 1000              # ours
  c.sample_image = '../shared/images/tubingen.jpg'  # ours; the sample's style: the first style image
  return c
