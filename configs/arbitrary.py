"""Arbitrary-style fast transfer: any photo (folder, video) with any painting, one forward pass.

  python run.py --config=configs/arbitrary.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg --output=outputs/tubingen_arbitrary.png
  python run.py --config=configs/arbitrary.py --content=../shared/images/tubingen.jpg \
      --style=../shared/images/starry_night.jpg,../shared/images/the_scream.jpg \
      --config.style_blend_weights=0.7,0.3 --config.strength=0.8 --output=outputs/mix.png
  python run.py --config=configs/arbitrary.py --content=../shared/videos/bunny.mp4 \
      --style=../shared/images/styles/candy.jpg --output=outputs/bunny_arbitrary.mp4

Default method: Ghiasi et al. 2017 (Magenta's pretrained networks,
../shared/weights/magenta/arbitrary_{predict,transform}.onnx, converted on first use);
--config.method=adain --model=DECODER_DIR uses an AdaIN decoder trained with
configs/adain2017.py. The schema and defaults live in nst_jax/jobs/arbitrary.py (arbitrary_config).
"""

from nst_jax.config.arbitrary import arbitrary_config


def get_config():
  c = arbitrary_config()
  c.method = 'ghiasi'   # the pretrained network (Ghiasi et al. 2017, Magenta's int8 TFLite release)
  c.strength = 1.0      # Magenta's default: the painting's embedding as is
  c.batch_size = 4      # folders/videos: frames per pass (as configs/fast.py)
  return c
