"""Johnson, Alahi & Fei-Fei (2016), "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution" (ECCV 2016, arXiv:1603.08155): a feed-forward network per style, trained with the
project's perceptual objective (content + Gram style + TV through nst_jax/losses/objective.py) on photos.

  python run.py --config=configs/johnson2016.py --style=../shared/images/styles/candy.jpg \
      --output=outputs/candy_model

Then stylize any photo with it: python run.py --config=configs/fast.py --model=outputs/candy_model
--content=PHOTO --output=out.png. On a 2-core CPU use configs/johnson2016_cpu.py instead.
"""

from nst_jax.config.train import train_config


def get_config():
  c = train_config()
  c.network = 'johnson'            # Sec. 3.1 + supplementary: 9x9 conv 32, stride-2 64, 128, 5 residual blocks, 64, 32, 9x9 to RGB (instance norm, resize-convs: nst_jax/models/transformer.py)
  c.crop_size = 256                # Sec. 4.1: "resized to 256 x 256"
  c.scale_min, c.scale_max = 1.0, 1.0  # Sec. 4.1: whole photos resized (ours: a crop of the full shorter side)
  c.batch_size = 4                 # Sec. 4.1: batch size 4
  c.num_steps = 40_000             # Sec. 4.1: 40,000 iterations, ~2 epochs of the 80k COCO photos
  c.learning_rate = 1e-3           # Sec. 4.1: Adam, learning rate 1e-3
  c.style_size = 256               # fast-neural-style train.lua default -style_image_size 256
  # Loss layers: Sec. 4.2 uses VGG-16 relu3_3 (content) and relu1_2, relu2_2, relu3_3, relu4_3
  # (style); we take the layers of the same names in VGG19 (our choice, documented in README).
  c.content_layers = 'relu3_3'
  c.style_layers = 'relu1_2,relu2_2,relu3_3,relu4_3'
  c.loss_norm = 'tf_tutorial'      # content mean((F-P)^2) = eq. 2; style mean((G/M-A/M)^2) of Grams
  # fast-neural-style's StyleLoss takes the MSE of Grams normalised by C*H*W (eq. 3), i.e. our
  # mean((G/M-A/M)^2) / C^2: per-layer weights 1/C^2 for C = 64, 128, 256, 512.
  c.style_layer_weights = '2.44140625e-4,6.103515625e-5,1.52587890625e-5,3.814697265625e-6'
  c.content_weight = 1.0           # fast-neural-style train.lua default -content_weights 1.0
  c.style_weight = 5.0             # fast-neural-style train.lua default -style_weights 5.0
  c.tv_weight = 1e-6               # fast-neural-style train.lua default -tv_strength 1e-6
  c.chunk = 20                     # ours: steps per jitted call (one progress line each)
  c.sample_every = 1000            # ours
  c.save_every = 1000              # ours
  return c
