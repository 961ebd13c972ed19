"""The benchmark protocol: every method on every (content, style) pair, after StyleID's.

  python run.py --config=configs/benchmark.py --content=../shared/datasets/bsds500_eval \
      --style=../shared/images/styles --output_dir=outputs/benchmark

Chung, Hyun & Heo, "Style Injection in Diffusion" (StyleID, CVPR 2024), Sec. 5.1: 20 content
photos x 40 style paintings = 800 stylized images at 512 px, each scored against its photo and
its painting. Here the photos are the 20 of BSDS500's evaluation split (StyleID draws them from
MS-COCO) and the paintings the first 40 of ../shared/images/styles (all of them if fewer: 27
today, so 540 pairs).
Every method runs at the same size; `--config.methods=` takes any optimisation preset of
configs/, `fast[:INDEX]`, `fast:MODEL_DIR[:INDEX]`, `ghiasi` and `adain`
(nst_jax/config/benchmark.py). Running the command again continues an interrupted run.

Typical time: days on a 2-core CPU (300 L-BFGS steps at 512 px, at 0.6-1.1 s a step (README),
are 3-6 minutes a pair): a job for a GPU, or for several hosts (--config.distributed=True).
measured: see docs/results
"""

from nst_jax.config.benchmark import benchmark_config


def get_config():
  c = benchmark_config()
  c.content = '../shared/datasets/bsds500_eval'  # ours: BSDS500's 20 evaluation photos
  c.style = '../shared/images/styles'            # ours: the shared paintings
  c.max_contents = 20                            # StyleID 2024 protocol: 20 content images
  c.max_styles = 40                              # StyleID 2024 protocol: 40 style images
  c.methods = 'gatys2015,fast:0,ghiasi,adain'    # ours: one method of each family
  c.size = 512                                   # StyleID 2024 protocol: 512 px images
  c.steps = 300                                  # ours: 300 L-BFGS steps, most of the way
  c.output_dir = 'outputs/benchmark'             # ours
  return c
