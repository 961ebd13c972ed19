"""The schema of the ``fast`` job (configs/fast.py): a trained feed-forward network (the built-in
26-style network by default) over a photo, a folder or a video. Validation is the job's,
:func:`nst_jax.jobs.fast.validate`.
"""

from __future__ import annotations

import ml_collections

from nst_jax.config import schema
from nst_jax.io import images as image_io


def fast_config() -> ml_collections.ConfigDict:
  """The schema (and defaults) of the ``fast`` job; configs/fast.py returns it."""
  c = ml_collections.ConfigDict()
  c.job = 'fast'
  c.model = ''                  # trained model directory (--model); '' = the built-in network
  c.builtin = 'multistyle26'    # the built-in network used without --model
  c.style_index = '0'           # N-style models: 'K' or a mix 'I:W,J:W' (normalised to sum 1)
  c.content = ''                # a photo, a folder of photos or a video (--content)
  c.output = ''                 # image file / folder / .mp4 (--output); '' = outputs/<name>_fast
  c.mask = ''                   # white = stylized, black = the photo (--mask)
  c.size = 0                    # longest side of the output in px; 0 = the source's size
  c.batch_size = 4              # images or frames per network pass
  c.strength = 1.0              # 1 = stylized, 0 = the photo (linear blend)
  c.original_colors = False     # keep the photo's colours (YIQ chroma), style luminance only
  # docs/results/2026-12-03-video.md: flicker 1.14x at 0.8 (0 gives 1.78x), no visible ghosting
  c.temporal_smoothing = 0.8    # video: 0 = off; up to 0.9 = calmer static regions (less flicker)
  c.max_frames = 0              # video: stop after this many frames; 0 = all
  c.skip_existing = False       # folders: skip photos whose output exists (resume after Ctrl-C)
  c.max_pixels = image_io.DEFAULT_MAX_PIXELS  # refuse larger source images
  c.impl = 'fast'               # fast (reformulated convs) | direct (plain lax convs)
  c.quiet = False               # no progress lines
  return schema.lock(c)
