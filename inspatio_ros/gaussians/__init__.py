"""Gaussian worlds (issue 20): a layer of 3D Gaussians fitted to the source frames.

rasterize.py: the pure-PyTorch reference rasterizer (differentiable, gsplat's maths);
model.py: the parameters, made from fused surfels, read from / written to a World (format v2/v3),
drawn as surfels for the CPU renderer (made at load, coloured by a stored per-Gaussian field);
optimize.py: ``inspatio-ros optimize``.
"""
