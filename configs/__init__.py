"""Presets: one module per paper or use case, each with ``get_config()``.

A package, so presets build on each other (``from configs import gatys2015``). ``run.py
--config=configs/NAME.py`` loads one by path; :func:`nst_jax.config.schema.load_preset` by name.
"""
