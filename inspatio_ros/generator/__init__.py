"""Per-world learned refiner: a compact U-Net that turns a point render into the final image.

``Refiner.load(path, device)(rgb, depth, coverage) -> rgb``; trained by
``inspatio-ros train-generator WORLD`` (generator/train.py).
"""
from .model import GeneratorConfig, RefinerNet
from .refiner import GENERATORS, Refiner, generator_path, load_generator, load_network, save_weights

__all__ = ["GENERATORS", "GeneratorConfig", "Refiner", "RefinerNet", "generator_path", "load_generator",
           "load_network", "save_weights"]
