"""The cost of each style loss: one objective evaluation (value and gradient) against the Gram
loss, in one process on one machine.

  python -m nst_jax.bench.style_losses --size=256 --json=docs/results/style_loss_cost.json

Every loss runs with the Gram baseline's layers (gatys2015's five style layers, conv4_2 for
content) so the ratio is the loss's own cost; the patch and hypercolumn losses (``mrf``,
``strotss``) run with their presets' layers and content term (at the Gram baseline's five
layers MRF would match every relu1_1 patch against every other). The ``preset/NAME`` entries time
each preset's whole objective (its layers and options), which sets the step budgets of equal-time
comparisons (configs/sweep_style_losses.py, configs/benchmark_style_losses.py). One JSON line per
entry, then a summary line with the ratios to ``gram`` (the mean of its runs first and last).
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags

from nst_jax.bench import evaluation
from nst_jax.config import schema
from nst_jax.io import images as image_io
from nst_jax.models import weights
from nst_jax.runtime import native

# --content, --style, --size, --steps, --repeats and --weights: nst_jax.bench.evaluation's flags.
_ONLY = flags.DEFINE_string('only', '', 'Comma-separated entry names ("" = all).')
_JSON = flags.DEFINE_string('json', '', 'Also write the lines to this file.')

# (name, config overrides); every entry but the presets' keeps the Gram baseline's layers.
ENTRIES: list[tuple[str, dict]] = [
    ('gram', {}),
    ('mean_std', {'style_loss': 'mean_std'}),
    ('cmd', {'style_loss': 'cmd'}),
    ('mmd_linear', {'style_loss': 'mmd', 'mmd_kernel': 'linear'}),
    ('mmd_poly', {'style_loss': 'mmd', 'mmd_kernel': 'poly'}),
    ('mmd_gaussian', {'style_loss': 'mmd', 'mmd_kernel': 'gaussian'}),
    ('histogram', {'style_loss': 'histogram'}),
    ('sliced_wasserstein', {'style_loss': 'sliced_wasserstein'}),
    ('mrf', {'preset': 'li2016_mrf'}),
    ('strotss', {'preset': 'kolkin2019'}),
    ('nnst', {'style_loss': 'nnst'}),
    ('strotss_style_only', {'preset': 'kolkin2019', 'content_loss': 'mse',
                            'content_layers': 'conv4_2'}),
] + [(f'preset/{p}', {'preset': p}) for p in (  # each preset's whole objective: step budgets
    'gatys2015', 'li2017_mean_std', 'li2017_mmd', 'kalischek2021', 'efdm2022', 'heitz2021',
    'li2016_mrf', 'kolkin2019', 'kolkin2022')]
# The fields a preset entry takes from its preset (the rest is the baseline's).
PRESET_FIELDS = ('style_loss', 'content_loss', 'style_layers', 'content_layers', 'mmd_kernel',
                 'cmd_order', 'sw_projections', 'mrf_patch_size', 'mrf_stride', 'style_samples',
                 'pooling')


def overrides_of(entry: dict) -> dict:
  """An entry's config overrides, a preset's loss fields filled in."""
  entry = dict(entry)
  preset = entry.pop('preset', None)
  if preset is None:
    return entry
  c = schema.load_preset(preset)
  return {**{f: c[f] for f in PRESET_FIELDS}, **entry}


def main(argv) -> None:
  del argv
  content = image_io.load_image(evaluation._CONTENT.value)
  style = image_io.load_image(evaluation._STYLE.value)
  params = weights.load_vgg19(evaluation._WEIGHTS.value)
  ev = evaluation  # pylint: disable=protected-access (its flags are this benchmark's)
  size = ev._SIZE.value
  only = set(schema.split_list(_ONLY.value))
  lines = []
  # Which sort the sorted-value losses ran (nst_jax.losses.sorting): 'native' or 'xla'.
  sort_impl = 'native' if native.sort_targets() is not None else 'xla'
  todo = [(n, e) for n, e in ENTRIES if not only or n in only or n == 'gram']
  # The Gram baseline runs first and again last, and the ratios use the mean of the two: a
  # first entry alone reads the machine's warm-up (ratios below 1 for losses that cost more).
  todo.append(('gram_last', {}))
  for name, entry in todo:
    over = overrides_of(entry)
    r = evaluation.bench_eval(content, style, size, ev._STEPS.value, ev._REPEATS.value,
                              'direct', 'avg', params=params, overrides=over)
    r = {'entry': name, **{k: v for k, v in over.items()}, **r, 'sort': sort_impl}
    lines.append(r)
    print(json.dumps(r))
    sys.stdout.flush()
  grams = [r['seconds_per_eval'] for r in lines if r['entry'] in ('gram', 'gram_last')]
  base = sum(grams) / len(grams)
  for r in lines:
    r['ratio_to_gram'] = round(r['seconds_per_eval'] / base, 3)
  summary = {'summary': {r['entry']: r['ratio_to_gram'] for r in lines}, 'size': size,
             'gram_seconds': grams, 'sort': sort_impl}
  print(json.dumps(summary))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      for r in lines + [summary]:
        f.write(json.dumps(r) + '\n')


if __name__ == '__main__':
  app.run(main)
