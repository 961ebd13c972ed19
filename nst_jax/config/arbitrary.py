"""The schema of the ``arbitrary`` job (configs/arbitrary.py): one pass of Ghiasi et al.'s
network or the AdaIN decoder for any painting. Validation is the job's,
:func:`nst_jax.jobs.arbitrary.validate`.
"""

from __future__ import annotations

import ml_collections

from nst_jax.config import schema
from nst_jax.io import images as image_io

# --- Config ----------------------------------------------------------------------------------

def arbitrary_config() -> ml_collections.ConfigDict:
  """The schema (and defaults) of the ``arbitrary`` job; validated by :func:`validate`."""
  c = ml_collections.ConfigDict()
  c.job = 'arbitrary'
  c.method = 'ghiasi'           # ghiasi (Magenta's pretrained nets) | adain (decoder trained here)
  #                               | wct (Li et al. 2017's whitening/colouring, the same decoder)
  c.content = ''                # a photo, a folder of photos or a video (--content)
  c.style = ''                  # painting(s), comma separated (--style)
  c.output = ''                 # image / folder / .mp4 (--output); '' = outputs/<name>_arbitrary
  c.strength = 1.0              # 0 = the photo's own embedding (AdaIN: features), 1 = painting's
  c.style_blend_weights = ''    # one weight per style, comma separated; '' = equal
  c.original_colors = False     # keep the photo's colours (YIQ chroma), style luminance only
  # WCT: its finest level on the decoded pixels (the painting's colour mean and covariance), x
  # strength. Ours: the largest of 0/0.5/0.7/0.85/1 keeping the mean content distance below
  # Ghiasi's on 20 tuning pairs; on 20 other pairs 1.29x -> 1.17x Ghiasi's style distance
  # (docs/results/2026-12-08-wct-pixel-level.md).
  c.wct_pixel_level = 0.5       # 0 = off (relu4_1 only), 1 = the painting's pixel statistics
  # AdaIN: the decoder's hidden activations matched (mean/std) to the painting's reconstruction,
  # then the same pixel level. Ours: on the 20 tuning pairs above 1.53x -> 1.40x Ghiasi's style
  # distance from the matching, 1.21x with the pixel level at 1, the largest of 0.5/0.7/1 keeping
  # the mean content distance below Ghiasi's (docs/results/2026-12-08-adain-decoder-matching.md).
  c.adain_decoder_matching = True  # False = AdaIN at relu4_1 only (Huang & Belongie)
  c.adain_pixel_level = 1.0     # 0 = off; as wct_pixel_level
  c.mask = ''                   # one style: white = stylized, black = the photo (--mask)
  c.masks = ''                  # several styles: one region mask per style, comma separated
  c.size = 0                    # longest side of the output in px; 0 = the source's size
  c.batch_size = 4              # folders/videos: images or frames per pass
  # docs/results/2026-12-03-video.md: Ghiasi flicker 2.37x at 0.8 (0 gives 4.22x), AdaIN 1.23x
  c.temporal_smoothing = 0.8    # video: 0 = off; up to 0.9 = calmer static regions (less flicker)
  c.max_frames = 0              # video: stop after this many frames; 0 = all
  c.skip_existing = False       # folders: skip photos whose output exists (resume after Ctrl-C)
  c.max_pixels = image_io.DEFAULT_MAX_PIXELS  # refuse larger source images
  c.weights = ''                # Ghiasi: converted .npz or a folder with the two ONNX files
  c.model = ''                  # AdaIN / WCT: decoder dir; '' = the shipped weights/adain_decoder
  c.impl = 'fast'               # Ghiasi convs: fast (strips, space-to-depth) | direct (same result)
  c.quiet = False               # no progress lines
  return schema.lock(c)
