"""The AdaIN decoder on a 2-core CPU: first an inverse of VGG19 relu4_1 (Li et al. 2017's decoder
loss: pixel + feature reconstruction of the photos), then Huang & Belongie's AdaIN loss from it.

  python run.py --config=configs/adain_decoder_cpu.py --output=outputs/adain_decoder_cpu

Steps 1-2000 reconstruct photos, steps 2001-6000 train the AdaIN loss (one run, one Adam state;
the loss is chosen by the step, so Ctrl-C + --config.resume=True continues exactly). For WCT
(configs/arbitrary.py --config.method=wct), whose decoder only has to reconstruct, run the first
leg alone with --config.num_steps=2000, keep a copy of the model directory, then continue the
same command with --config.resume=True (num_steps back at 6000) for the AdaIN decoder.

Measured (docs/results/2026-12-04-adain.md): 1500 reconstruction steps (--config.adain.pretrain_steps=1500
--config.num_steps=1500) took 35 min on the idle 2-core CPU and made the shipped decoder
(weights/adain_decoder, the default of method=adain and method=wct): on 20 unseen pairs at 384 px
1.38x (AdaIN) / 1.29x (WCT) Ghiasi's style distance at a content distance no larger on all 20, no
dark cast; 1270 AdaIN steps after it reached 1.36x but kept the content worse on 14 of 20 pairs.

Earlier estimate of the whole run: 2.3 h on an idle 2-core CPU, 3.9 h at the speeds measured
on 2026-12-03 with the machine shared (load 2-3.5: 2.1 s per reconstruction step, 2.5-2.6 s per
AdaIN step at 128 px, batch 4, width 0.5; compile 19-32 s); the idle figure takes ~1.2 s and the
1.47 s AdaIN step of docs/results/2026-11-25-adain.md. Measured result so far (64 px crops, 75 s of
reconstruction steps, 240 steps): 4 unseen BSDS500 photos reconstructed at RMSE 43 grey levels,
channel-mean errors -11/-7/-17, no hatching (the shipped decoder's alpha=0 images: RMSE 74,
-28/-46/-47, hatched).
"""

from nst_jax.config.schema import load_preset


def get_config():
  c = load_preset('adain2017')     # the paper's loss, data and lr decay; overrides below
  c.crop_size = 128                # ours, as the shipped decoder's CPU runs: 4x fewer pixels than Sec. 6's 256
  c.batch_size = 4                 # ours (Sec. 6: 8), as the shipped decoder's CPU runs
  c.net.width = 0.5                # ours: forward + backward 1.0 s vs 3.4-4.2 s at width 1 (docs/results/2026-11-25-adain.md)
  c.learning_rate = 3e-4           # ours: 60 reconstruction steps: held-out RMSE 58 at 3e-4, 75 at 1e-4, 68 at 1e-3
  c.adain.pretrain_steps = 2000    # ours: ~27 passes over the 300 BSDS500 photos at batch 4 (~40 min idle)
  c.adain.pixel_weight = 10.0      # ours: 60 steps: held-out RMSE 46 at 10 vs 58 at 1, feature loss equal (6.30/6.31); 100: 7.01
  c.adain.feature_weight = 1.0     # eridgd/WCT-TF's train.py default (relu4_1, normalised-VGG units)
  c.num_steps = 6000               # ours: 4000 AdaIN steps after pre-training (~100 min idle at ~1.4 s)
  c.max_minutes = 240.0            # ours: an upper bound (2.3-3.9 h estimated); saves and stops
  c.chunk = 10                     # ours
  c.sample_every = 500             # ours: samples/ show reconstruction | AdaIN side by side
  c.save_every = 250               # ours
  return c
