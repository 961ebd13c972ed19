from setuptools import find_packages, setup

setup(
    name='nst_jax',
    version='0.1.0',
    description='Neural style transfer (Gatys et al. 2015/2016) in JAX/Flax',
    packages=find_packages(include=['nst_jax', 'nst_jax.*']),
    python_requires='>=3.11',
    install_requires=['jax>=0.4.30', 'jaxlib>=0.4.30', 'flax>=0.8', 'optax>=0.2.3', 'numpy',
                      'pillow', 'h5py', 'absl-py', 'ml_collections'],
    extras_require={'test': ['pytest', 'pytest-xdist', 'chex', 'mypy', 'ruff', 'onnx',
                             'onnxruntime', 'imageio-ffmpeg'],
                    'onnx': ['onnx'],  # only to convert ONNX weights (weights/convert_onnx.py)
                    'video': ['imageio-ffmpeg']},
)
