"""The seed report's layer grid: content block5_conv1..4 x three style-layer sets, one program.

  python run.py --config=configs/sweep_layers.py --content=../shared/images/brad_pitt.jpg \
      --style=../shared/images/picasso_selfport1907.jpg --output_dir=outputs/sweep_layers

Style sets: every block's conv1, every block's conv2, and the mixed set found "on a whim"
(block1_conv1, block2_conv2, block3_conv3, block4_conv2, block5_conv3). Layer choices are
per-layer weight vectors over the union of layers (1/5 per used style layer), so all twelve
configs run in one compiled program. Base: configs/popart_portrait.py (its weights and
RMSProp). Contact sheet: one row per content layer, one column per style set.
"""

from configs import popart_portrait

CONV1 = 'block1_conv1+block2_conv1+block3_conv1+block4_conv1+block5_conv1'
CONV2 = 'block1_conv2+block2_conv2+block3_conv2+block4_conv2+block5_conv2'
MIXED = 'block1_conv1+block2_conv2+block3_conv3+block4_conv2+block5_conv3'


def get_config():
  c = popart_portrait.get_config()
  c.size = 256
  c.num_steps = 500
  c.sweep.mode = 'product'
  c.sweep.axes = ('content_layers=block5_conv1,block5_conv2,block5_conv3,block5_conv4; '
                  f'style_layers={CONV1},{CONV2},{MIXED}')
  return c
