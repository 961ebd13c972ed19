"""The benchmark protocol: every method on every (content, style) pair, with the evaluation
metrics, a per-method summary and a contact sheet.

  python run.py --config=configs/benchmark.py --content=../shared/datasets/bsds500_eval \
      --style=../shared/images/styles --output_dir=outputs/benchmark
  python run.py --config=configs/benchmark_cpu.py --output_dir=outputs/benchmark_cpu
  python run.py --config=configs/benchmark.py --content=DIR --style=DIR --output_dir=OUT \
      --config.methods=gatys2015,fast:7,fast:MODEL_DIR:0,ghiasi,adain --config.size=256 \
      --config.steps=100

Methods (``config.methods``, comma separated; :func:`parse_method`): an optimisation preset of
``configs/`` by name (run for ``config.steps`` steps, 0 = the preset's own), ``fast[:INDEX]``
(the built-in 26-style network), ``fast:MODEL_DIR[:INDEX]`` (a trained model directory),
``ghiasi`` and ``adain``. ``config.size`` is the longest side of every content and style image,
for every method. Each model is loaded once, before anything is written; the VGG19 params are
shared by the optimisation presets, the AdaIN encoder and the metrics
(:mod:`nst_jax.evaluation.metrics`; ``config.metrics`` selects a subset).

``seconds`` is the time of one image without compilation (``compile_s``: what the first image
of a new input shape spent compiling): optimisation builds the first problem of each shape and
runs zero steps of it before the timed call, and subtracts the loop's compile time from it; the
one-pass methods run the first image of each input shape twice and time the second call.
Arbitrary-style methods include encoding the style (a new one for each pair).

Files in ``config.output_dir`` (:mod:`nst_jax.jobs.benchmark_report`): ``results.csv`` /
``results.json`` (a row per pair and method; the missing ones with their reason),
``summary.csv`` / ``summary.json`` (per method: mean and bootstrap 95% interval),
``contact_sheet.png``, ``images/`` (one PNG per pair and method), ``config.json`` and
``parts/results.<process>.json``, the rows each process has finished, rewritten atomically
after each pair. Running the same command again continues from them: finished cells are kept and
skipped (a rerun of a finished benchmark takes seconds), new methods or more pairs run only what
they add, and a config that would change the results (size, steps, metrics, weights, folders)
is refused with the fields that differ. Ctrl-C stops after the current image, writes the report
of what is done and exits with 130. An unreadable image is skipped with one warning and its pairs
are reported missing; a cell whose method fails (a NaN loss, an image too small for it) is
reported missing with the error and not retried by a rerun. Not detected: a preset's code or a
model directory's files changed under the same name (use another output directory).

With ``config.distributed`` every process takes its share of the pairs
(:func:`nst_jax.runtime.distributed.share`) and writes its own part file; after a barrier
process 0 writes the report from the merged parts
(:func:`~nst_jax.jobs.benchmark_report.merge_parts`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
import time
from typing import Any, Callable, Mapping, Optional, Sequence

import ml_collections
import numpy as np

from nst_jax.config import schema
from nst_jax.errors import ConfigError, ImageError, NSTError
from nst_jax.evaluation import learned as learned_lib
from nst_jax.evaluation import metrics as metrics_lib
from nst_jax.io import checkpoints, log
from nst_jax.io import files as fileio
from nst_jax.io import images as image_io
from nst_jax.jobs import arbitrary
from nst_jax.jobs import benchmark_report as report
from nst_jax.jobs import fast
from nst_jax.losses import controls
from nst_jax.runtime import compile_cache, distributed, interrupt

DEFAULT_OUTPUT = 'outputs/benchmark'
# The contact sheet's captions by default: style (Gram), StyleID's content structure (CFSD) and
# the photo's structure (SSIM).
SHEET_METRICS = ('style_gram', 'cfsd', 'ssim')
ONE_PASS = ('ghiasi', 'adain')
KINDS = ('PRESET[@STEPS] (an optimisation preset of configs/, e.g. gatys2015 or gatys2015@50)',
         'fast[:INDEX]',
         'fast:MODEL_DIR[:INDEX]', 'ghiasi', 'adain')
# Fields that change no row's result: a benchmark continues across changes of these (another
# method list or more pairs run only what they add; the summary and the sheet are redrawn).
KEY_IGNORED = ('methods', 'max_contents', 'max_styles', 'output_dir', 'bootstrap_resamples',
               'bootstrap_seed', 'sheet_pairs', 'sheet_metrics', 'cell_size', 'compile_cache',
               'quiet', 'distributed', 'coordinator', 'num_processes', 'process_id',
               'connect_timeout', 'learned', 'learned_sha256')


# --- Methods -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Method:
  """One entry of ``config.methods``."""
  name: str            # as given: the table's ``method`` column
  kind: str            # 'optimize' | 'fast' | 'ghiasi' | 'adain'
  preset: str = ''     # optimize: a preset name of configs/ or a .py path
  steps: int = 0       # optimize: PRESET@STEPS, its own step count (0 = config.steps)
  model: str = ''      # fast: a model directory ('' = the built-in network)
  index: int = 0       # fast: the style index of an N-style model


def preset_names() -> list[str]:
  """The presets of ``configs/`` (optimisation ones and others)."""
  return sorted(p.stem for p in schema.CONFIGS_DIR.glob('*.py') if p.stem != '__init__')


def parse_method(text: str) -> Method:
  """A :class:`Method` from its name (ConfigError naming the kinds and the nearest name)."""
  name = text.strip()
  head, _, rest = name.partition(':')
  if head == 'fast':
    if not rest:
      return Method(name, 'fast')
    if rest.isdigit():
      return Method(name, 'fast', index=int(rest))
    model, _, idx = rest.rpartition(':')
    if model and idx.isdigit():
      return Method(name, 'fast', model=model, index=int(idx))
    return Method(name, 'fast', model=rest)
  if name in ONE_PASS:
    return Method(name, name)
  preset, at, steps = name.partition('@')
  if at and not steps.isdigit():
    raise ConfigError(f'method {name!r}: PRESET@STEPS needs a whole number of steps')
  if preset in preset_names() or (preset.endswith('.py') and Path(preset).is_file()):
    return Method(name, 'optimize', preset=preset, steps=int(steps or 0))
  raise ConfigError(f'unknown method {name!r}; a method is one of {", ".join(KINDS)}'
                    + schema.did_you_mean(name, [*preset_names(), 'fast', *ONE_PASS]))


def parse_methods(text: str) -> list[Method]:
  methods = [parse_method(t) for t in schema.split_list(text)]
  if not methods:
    raise ConfigError('methods is empty; give e.g. --config.methods=gatys2015,fast:0,ghiasi,adain')
  names = [m.name for m in methods]
  dupes = sorted({n for n in names if names.count(n) > 1})
  if dupes:
    raise ConfigError(f'methods lists {", ".join(dupes)} more than once')
  return methods


def optimize_config(method: Method, size: int, steps: int) -> ml_collections.ConfigDict:
  """The preset's config at ``size`` (and ``steps`` if > 0), without its file inputs."""
  from nst_jax.optimize import problem, stylize  # pylint: disable=g-import-not-at-top
  c = schema.load_preset(method.preset)
  job = c.get('job', 'stylize')
  if job != 'stylize':
    raise ConfigError(f'method {method.name!r}: that preset runs the {job} job; an optimisation '
                      'method names a stylize preset (e.g. gatys2015)')
  # Texture synthesis runs too (its photo only sets the output's shape; the style and colour
  # columns are the ones that mean something): how Heitz et al.'s textures are judged.
  for bad, why in ((c.sweep.axes, 'is a sweep'),
                   (c.mode == 'content_reconstruction', f'has mode={c.mode}'),
                   (c.scale_mix_layer, 'mixes two style images')):
    if bad:
      raise ConfigError(f'method {method.name!r}: the preset {why}; the benchmark runs one '
                        'content and one style image at one size')
  overrides: dict[str, Any] = {
      'size': int(size), 'height': 0, 'width': 0, 'content': '', 'style': '', 'mask': '',
      'masks': '', 'labels': '', 'style_masks': '', 'style_blend_weights': '', 'resume': False}
  steps = method.steps or steps
  if c.stages and c.stages != controls.AUTO_STAGES:  # last stage at `size`, the others alike
    overrides['stages'] = scaled_stages(c.stages, int(size), int(steps))
  elif steps > 0:
    overrides['num_steps'] = int(steps)
  c = stylize.with_overrides(c, overrides, f' (method {method.name})')
  problem.validate(c)
  return c


def scaled_stages(text: str, size: int, steps: int) -> str:
  """A preset's stages with the last at ``size`` px (the others in proportion) and, with
  ``steps`` > 0, that many steps in all (split in the preset's proportions)."""
  stages = controls.parse_stages(text)
  scale = size / stages[-1][0]
  total = sum(n for _, n in stages)
  per = [n if steps <= 0 or total == 0 else max(1, round(n * steps / total)) for _, n in stages]
  return ','.join(f'{max(16, round(s * scale))}:{n}' for (s, _), n in zip(stages, per))


Result = tuple[np.ndarray, float, float]  # (uint8 image, seconds, compile seconds)


class _Optimize:
  """An optimisation preset (:func:`nst_jax.optimize.stages.run_stages`, the loop of
  :func:`nst_jax.stylize`). The first pair of each (content, style) shape builds its problem and
  runs zero steps of it untimed first (the targets' programs, the initial evaluation and the
  image's small programs compile there); the loop's own compilation is subtracted from the timed
  call."""

  def __init__(self, config: ml_collections.ConfigDict, vgg: Mapping):
    self.config, self.vgg = config, vgg
    self._seen: set = set()

  def __call__(self, content: np.ndarray, style: np.ndarray) -> Result:
    from nst_jax.optimize import loop, problem, stages  # pylint: disable=g-import-not-at-top
    warm = 0.
    if (content.shape, style.shape) not in self._seen:
      t = time.perf_counter()
      loop.optimize(problem.build_problem(self.config, self.vgg, content, [style]), self.vgg, 0)
      warm = time.perf_counter() - t
      self._seen.add((content.shape, style.shape))
    t = time.perf_counter()
    runs = stages.run_stages(self.config, self.vgg, content, [style])
    wall = time.perf_counter() - t
    compile_s = sum(float(r.timings['compile_s']) for _, _, r in runs)
    return runs[-1][2].image, max(wall - compile_s, 0.), compile_s + warm


class _OnePass:
  """A one-pass method: the first image of each input shape runs twice, the second timed."""

  def __init__(self, apply: Callable[[np.ndarray, np.ndarray], np.ndarray],
               shape_key: Callable[[np.ndarray, np.ndarray], Any]):
    self.apply, self.shape_key = apply, shape_key
    self._seen: set = set()

  def __call__(self, content: np.ndarray, style: np.ndarray) -> Result:
    t = time.perf_counter()
    out = self.apply(content, style)
    first = time.perf_counter() - t
    key = self.shape_key(content, style)
    if key in self._seen:
      return out, first, 0.
    self._seen.add(key)
    t = time.perf_counter()
    out = self.apply(content, style)
    second = time.perf_counter() - t
    return out, second, max(first - second, 0.)


def restyled(base: arbitrary.ArbitraryStylizer, style: np.ndarray
             ) -> arbitrary.ArbitraryStylizer:
  """``base`` (its loaded networks) with the one painting ``style``: only the style's embedding
  (Ghiasi) or feature statistics (AdaIN) are computed."""
  s = copy.copy(base)
  s.styles = [arbitrary.check_image(style, 'style image', arbitrary.MIN_STYLE_SIDE)]
  if base.method == 'ghiasi':
    s.style_embs = arbitrary.embeddings(base.params, s.styles)
  else:
    from nst_jax.models import adain  # pylint: disable=g-import-not-at-top
    s.adain_stats = adain.style_statistics(base.vgg, s.styles)
  return s


def build_runner(method: Method, config: ml_collections.ConfigDict, vgg: Mapping,
                 first_style: np.ndarray) -> Callable[[np.ndarray, np.ndarray], Result]:
  """Loads ``method``'s model once; returns ``(content, style) -> (image, s, compile s)``."""
  if method.kind == 'optimize':
    return _Optimize(optimize_config(method, int(config.size), int(config.steps)), vgg)
  if method.kind == 'fast':
    stylizer = fast.Stylizer(method.model or None, method.index)
    return _OnePass(lambda c, s: stylizer(c), lambda c, s: c.shape)
  if method.kind == 'ghiasi':
    from nst_jax.models import ghiasi  # pylint: disable=g-import-not-at-top
    base = arbitrary.ArbitraryStylizer([first_style], 'ghiasi',
                                       params=ghiasi.load(config.ghiasi_weights or None))
    return _OnePass(lambda c, s: restyled(base, s)(c), lambda c, s: c.shape)
  base = arbitrary.ArbitraryStylizer([first_style], 'adain', params=vgg,
                                     model=config.adain_model or None)
  return _OnePass(lambda c, s: restyled(base, s)(c), lambda c, s: (c.shape, s.shape))


# --- Metrics -----------------------------------------------------------------------------------

def metric_names(text: str, known: Sequence[str], what: str = 'metric') -> list[str]:
  """The chosen metrics ('' = all ``known``); ConfigError for an unknown one."""
  names = schema.split_list(text) or list(known)
  for n in names:
    if n not in known:
      raise ConfigError(f'unknown {what} {n!r}; choose among {", ".join(known)}'
                        + schema.did_you_mean(n, known))
  return list(dict.fromkeys(names))


def sheet_metrics(text: str, metrics: Sequence[str]) -> list[str]:
  """The (at most 3) metrics under each contact-sheet cell: ``text``, else :data:`SHEET_METRICS`
  among ``metrics``, filled up with the first others."""
  if text:
    return metric_names(text, metrics, 'sheet metric')[:3]
  preferred = [m for m in SHEET_METRICS if m in metrics]
  return (preferred + [m for m in metrics if m not in preferred])[:3]


# --- The job -----------------------------------------------------------------------------------

def _pairs(text: str) -> dict[str, str]:
  """``'A=x,B'`` -> ``{'A': 'x', 'B': ''}``."""
  out = {}
  for item in schema.split_list(text):
    name, _, value = item.partition('=')
    out[name.strip()] = value.strip()
  return out


def learned_weights(config: ml_collections.ConfigDict
                    ) -> tuple[dict[str, Optional[str]], dict[str, str]]:
  """The learned metrics asked for: ({name: weights path or None for the default},
  {name: the user's sha256}); ConfigError for an unknown name."""
  paths = {n: (p or None) for n, p in _pairs(config.learned).items()}
  hashes = _pairs(config.learned_sha256)
  for name in list(paths) + list(hashes):
    learned_lib.metric_spec(name)
  return paths, hashes


def learned_summary(out: Path, methods: Sequence[Method], contents: Mapping[str, np.ndarray],
                    styles: Mapping[str, np.ndarray], paths: Mapping[str, Optional[str]],
                    hashes: Mapping[str, str]) -> dict[str, dict[str, float]]:
  """Each method's learned metrics over all its finished outputs (read back from
  ``results.json``; FID needs many images: StyleID's protocol has 800 pairs)."""
  rows = json.loads((out / 'results.json').read_text())['rows']
  result = {}
  for m in methods:
    mine = [r for r in rows if r['method'] == m.name]
    if len(mine) < 2:
      continue
    outputs = [image_io.load_image(out / r['image']) for r in mine]
    result[m.name] = learned_lib.learned_metrics(
        outputs, [contents[r['content']] for r in mine], [styles[r['style']] for r in mine],
        paths, hashes)
  return result


def validate(config: ml_collections.ConfigDict) -> list[Method]:
  """One-line ConfigError for an impossible benchmark (before any file is read); the methods."""
  if not config.content or not config.style:
    raise ConfigError('the benchmark needs --content=DIR (photos) and --style=DIR (paintings)')
  for name, low in (('size', 16), ('steps', 0), ('max_contents', 0), ('max_styles', 0),
                    ('bootstrap_resamples', 1), ('sheet_pairs', 0), ('cell_size', 16)):
    if int(config[name]) < low:
      raise ConfigError(f'{name} must be >= {low}, got {config[name]}')
  methods = parse_methods(config.methods)
  for m in methods:
    if m.kind == 'optimize':
      optimize_config(m, int(config.size), int(config.steps))
  return methods


def input_files(path: str, what: str, limit: int) -> list[Path]:
  """An image file, or the first ``limit`` (0 = all) images of a folder by name."""
  p = Path(path).expanduser()
  files = [p] if p.is_file() else image_io.list_images(p, what)
  return files[:limit] if limit > 0 else files


def load_images(files: Sequence[Path], what: str, size: int, cap: int
                ) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], str]]:
  """(images by file name, {(what, name): reason} of the unreadable ones, each warned once)."""
  images, bad = {}, {}
  for f in files:
    try:
      images[f.name] = image_io.load_image(f, size=size, max_pixels=cap)
    except ImageError as e:
      log.warning(f'skipping the unreadable {what} image {f}: {e}')
      bad[(what, f.name)] = f'unreadable {what} image: {e}'
  if not images:
    raise ImageError(f'none of the {len(files)} {what} images could be read')
  return images, bad


def key_fields(config: ml_collections.ConfigDict) -> dict:
  """The fields that define the rows' results (the folders as absolute paths)."""
  d = {k: v for k, v in config.to_dict().items() if k not in KEY_IGNORED}
  for k in ('content', 'style'):
    d[k] = str(Path(d[k]).expanduser().resolve())
  return d


def benchmark_key(config: ml_collections.ConfigDict) -> str:
  return checkpoints.config_key(ml_collections.ConfigDict(key_fields(config)), ())


def _check_same_benchmark(out: Path, merged: Mapping, key: str, fields: Mapping) -> None:
  if merged['key'] in (None, key):
    return
  old = merged.get('key_fields') or {}
  diff = [f'{k}={old.get(k)!r} there, {v!r} here' for k, v in fields.items()
          if old and old.get(k) != v]
  raise ConfigError(f'{out} holds another benchmark ({"; ".join(diff) or "other settings"}); '
                    'use another --output_dir, or delete it to start over')


def run(config: ml_collections.ConfigDict, params: Optional[Mapping] = None,
        quiet: Optional[bool] = None, stop: Optional[Callable[[], bool]] = None,
        **unused: Any) -> dict:
  """The ``benchmark`` job; returns the summary (also written as ``summary.json``).

  ``params``: the VGG19 params (default: ``config.weights`` resolved); ``stop()``: checked after
  each image like Ctrl-C (the run then writes what is done and raises
  :class:`~nst_jax.runtime.interrupt.Interrupted`).
  """
  del unused
  t0 = time.perf_counter()
  quiet = bool(config.quiet) if quiet is None else quiet
  if config.distributed:  # before anything touches JAX (validation builds arrays)
    distributed.initialize_from(config)
  methods = validate(config)
  metrics = metric_names(config.metrics, metrics_lib.METRICS)
  learned_paths, learned_hashes = learned_weights(config)
  for name, path in learned_paths.items():  # a missing or mismatching file: before any work
    learned_lib.load_learned(name, path, learned_hashes.get(name))
  shown = sheet_metrics(config.sheet_metrics, metrics)
  size, cap = int(config.size), int(config.max_pixels)
  content_files = input_files(config.content, 'content', int(config.max_contents))
  style_files = input_files(config.style, 'style', int(config.max_styles))
  out = Path(config.output_dir or DEFAULT_OUTPUT).expanduser()
  key, fields = benchmark_key(config), key_fields(config)
  merged = report.merge_parts(out)
  _check_same_benchmark(out, merged, key, fields)
  contents, bad = load_images(content_files, 'content', size, cap)
  styles, bad_styles = load_images(style_files, 'style', size, cap)
  bad.update(bad_styles)
  pairs = [(c.name, s.name) for c in content_files for s in style_files]
  mine = distributed.share(pairs)
  finished = {report.row_key(r) for r in merged['rows'] + merged['failed']}
  todo = {(c, s, m.name) for c, s in mine for m in methods if c in contents and s in styles
          and (c, s, m.name) not in finished}
  runners: dict[str, Callable[[np.ndarray, np.ndarray], Result]] = {}
  vgg = params
  if todo:
    compile_cache.enable(config.compile_cache)
    if vgg is None:
      from nst_jax.models import weights  # pylint: disable=g-import-not-at-top
      vgg = weights.load_vgg19(config.weights or None)
    needed = {m for _, _, m in todo}
    first_style = next(iter(styles.values()))
    runners = {m.name: build_runner(m, config, vgg, first_style) for m in methods
               if m.name in needed}
  # Every input is read and every model loaded: only now is anything written.
  fileio.check_writable_dir(out)
  main = distributed.is_main()
  if main:
    fileio.write_json(out / 'config.json', config.to_dict())
  index, count = distributed.process_index(), distributed.process_count()
  own = report.part_path(out, index)
  old = report.read_part(own) if own.is_file() else {'rows': [], 'failed': []}
  rows = {report.row_key(r): r for r in old['rows']}
  failed = {report.row_key(r): r for r in old.get('failed', [])}
  say = (lambda text: None) if quiet else log.info
  say(f'benchmark: {len(pairs)} pairs x {len(methods)} methods into {out}: '
      f'{len(pairs) * len(methods) - len(todo)} done or missing, {len(todo)} to run')
  t_loaded = time.perf_counter()
  stopped, ran = False, 0

  def save(complete: bool) -> None:
    report.write_part(out, index, count, key, rows.values(), failed.values(), complete,
                      fields)

  with interrupt.StopOnSignal(quiet=quiet, what='image') as signal:
    try:
      for i, (c, s) in enumerate(mine):
        cells = [m for m in methods if (c, s, m.name) in todo]
        for m in cells:
          cell = (c, s, m.name)
          try:
            image, seconds, compile_s = runners[m.name](contents[c], styles[s])
            values = _metrics(vgg, image, contents[c], styles[s], metrics)
            name = report.image_name(c, s, m.name)
            image_io.save_image(out / name, image)
          except NSTError as e:
            failed[cell] = {'content': c, 'style': s, 'method': m.name, 'reason': str(e)}
            log.warning(f'pair {i + 1}/{len(mine)} {c} x {s}: {m.name} failed (reported '
                        f'missing): {e}')
          else:
            rows[cell] = {'content': c, 'style': s, 'method': m.name, 'metrics': values,
                          'seconds': seconds, 'compile_s': compile_s,
                          'height': int(image.shape[0]), 'width': int(image.shape[1]),
                          'image': name}
            ran += 1
            say(f'pair {i + 1}/{len(mine)} {c} x {s}: {m.name} '
                + report.caption(rows[cell], shown, ', ')
                + (f' (+{compile_s:.1f} s compile)' if compile_s > 0.05 else ''))
          if signal.requested or (stop is not None and stop()):
            stopped = True
            break
        if cells:
          save(False)
        if stopped:
          break
    except BaseException:
      save(False)  # an unexpected error: the finished cells are kept for the next run
      raise
  stopped = stopped and any(cell not in rows and cell not in failed for cell in todo)
  save(not stopped)
  t_run = time.perf_counter()
  distributed.barrier('benchmark parts')  # process 0 merges once every part is written
  summary: dict[str, Any] = {'out_dir': str(out), 'ran': ran}
  if main:
    thumbs = {**{('content', n): contents.get(n) for n, _ in pairs},
              **{('style', n): styles.get(n) for _, n in pairs}}
    summary.update(report.write_report(
        out, config=config.to_dict(), key=key, contents=[f.name for f in content_files],
        styles=[f.name for f in style_files], methods=[m.name for m in methods], metrics=metrics,
        higher_is_better=metrics_lib.HIGHER_IS_BETTER, unreadable=bad,
        thumbs=thumbs, sheet_metrics=shown, sheet_pairs=int(config.sheet_pairs),
        cell_size=int(config.cell_size), resamples=int(config.bootstrap_resamples),
        seed=int(config.bootstrap_seed),
        timings={'load_s': t_loaded - t0, 'run_s': t_run - t_loaded}))
    if learned_paths:
      summary['learned'] = learned_summary(out, methods, contents, styles, learned_paths,
                                           learned_hashes)
      summary_file = out / 'summary.json'
      fileio.write_json(summary_file, report.finite_or_none(
          dict(json.loads(summary_file.read_text()), learned=summary['learned'])))
  summary['wall_s'] = time.perf_counter() - t0
  if stopped:
    done = sum(1 for c, s in mine if all((c, s, m.name) not in todo or (c, s, m.name) in rows
                                         or (c, s, m.name) in failed for m in methods))
    raise interrupt.Interrupted(interrupt.resume_line(
        done, [out / 'results.csv', out / 'summary.csv', out / 'contact_sheet.png', own],
        interrupt.resume_command(flag=''), what='pair'), None, [out])
  if not quiet:
    log.info(f'wrote {out}/results.csv, summary.csv and contact_sheet.png ({ran} new results, '
             f'{summary["wall_s"]:.1f} s)')
  return summary


def _metrics(vgg: Any, image: np.ndarray, content: np.ndarray, style: np.ndarray,
             names: Sequence[str]) -> dict[str, float]:
  """The chosen metrics of one result (:func:`nst_jax.evaluation.metrics.image_metrics`)."""
  values = metrics_lib.image_metrics(vgg, image, content, style)
  return {n: float(values[n]) for n in names}
