"""What several sub-commands share: ``--size WxH``, ``--config YAML`` and ``--generator`` options."""
from __future__ import annotations

from ..errors import InputError


def parse_size(text: str, minimum: int = 8, maximum: int = 8192) -> tuple[int, int]:
    """``--size WxH`` -> (W, H); an InputError naming the flag and the fix otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size '{text}' is not WIDTHxHEIGHT", "write it like 640x360") from None
    if w < minimum or h < minimum:
        raise InputError(f"--size {text} is too small", f"give at least {minimum}x{minimum}, e.g. 640x360")
    if w > maximum or h > maximum:
        raise InputError(f"--size {text} is too large", f"give at most {maximum}x{maximum}")
    return w, h


def add_config_argument(parser) -> None:
    """The ``--config YAML`` option of the commands that render."""
    parser.add_argument("--config", metavar="YAML",
                        help="ROS 2 parameter file with render.* settings (see config/render.yaml)")


def render_settings_from_args(args):
    """RenderSettings from ``--config`` (None: the defaults). The file may configure the whole node
    (``inspatio-ros run --config``): the node's own parameters are left to it."""
    if not args.config:
        return None
    from ..config import load_render_settings
    from ..sim.parameters import parameter_table

    return load_render_settings(args.config, other_parameters=parameter_table())


def add_generator_arguments(parser) -> None:
    """``--generator none|refiner`` and ``--generator-weights`` of the commands that render."""
    parser.add_argument("--generator", choices=("none", "refiner"), default="none",
                        help="none: the raw point render; refiner: the world's learned refiner "
                             "(train it with 'inspatio-ros train-generator WORLD')")
    parser.add_argument("--generator-weights", metavar="FILE",
                        help="refiner weights (default: WORLD.generator.safetensors beside the world)")


def add_world_training_arguments(p, output_help: str) -> None:
    """WORLD, -o/--output and --frames: what the commands that fit something to a world's own source
    frames (optimize, train-generator) take."""
    p.add_argument("world", help="world file (.safetensors) made by 'inspatio-ros build'")
    p.add_argument("-o", "--output", help=output_help)
    p.add_argument("--frames", help="the frames the world was built from (default: the build input it records)")
