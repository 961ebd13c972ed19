from setuptools import find_packages, setup

setup(
    name='nst_jax',
    version='0.1.0',
    description='Neural style transfer (Gatys et al. 2015/2016) in JAX/Flax',
    packages=find_packages(include=['nst_jax', 'nst_jax.*']),
    # C++ sources of the native CPU kernels, compiled on first use (nst_jax/runtime/native.py).
    package_data={'nst_jax.runtime': ['*.cc']},
    python_requires='>=3.11',
    install_requires=['jax>=0.4.30', 'jaxlib>=0.4.30', 'flax>=0.8', 'optax>=0.2.3', 'numpy',
                      'pillow', 'h5py', 'absl-py', 'ml_collections',
                      # ml_dtypes 0.7.0's extension takes 0.53 s to import (0.05 s for 0.6.0),
                      # half of `import jax` and a fifth of a warm 1-step run (2026-12-02).
                      'ml_dtypes>=0.5,<0.7'],
    extras_require={'test': ['pytest', 'pytest-xdist', 'chex', 'mypy', 'ruff', 'import-linter',
                             'onnx', 'onnxruntime', 'imageio-ffmpeg',
                             # References of the evaluation metrics' tests; OpenCV's DIS flow.
                             'scikit-image', 'opencv-python-headless'],
                    'onnx': ['onnx'],  # only to convert ONNX weights (weights/convert_onnx.py)
                    'video': ['imageio-ffmpeg'],
                    # the video warping error's optical flow (nst_jax.evaluation.video)
                    'video_eval': ['opencv-python-headless']},
)
