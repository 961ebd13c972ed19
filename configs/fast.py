"""Fast (feed-forward) stylization of a photo, a folder of photos or a video.

  python run.py --config=configs/fast.py --content=../shared/images/tubingen.jpg \
      --output=outputs/tubingen_fast.png --config.style_index=7
  python run.py --config=configs/fast.py --content=../shared/videos/bunny.mp4 \
      --output=outputs/bunny_fast.mp4 --config.style_index=3:0.5,12:0.5 --config.size=480
  python run.py --config=configs/fast.py --model=MODEL_DIR --content=PHOTOS/ --output=OUT/

Without --model: the built-in 26-style network of Dumoulin et al. 2017 (Magenta's multistyle
model, ../shared/weights/magenta/multistyle26.onnx, converted on first use). The schema and
defaults live in nst_jax/jobs/fast.py (fast_config).
"""

from nst_jax.config.fast import fast_config


def get_config():
  c = fast_config()
  c.style_index = '0'   # the first of the 26 built-in styles (Dumoulin et al. 2017, Magenta demo)
  c.batch_size = 4      # folders/videos: frames per pass (2-core CPU: throughput flat above 4)
  return c
