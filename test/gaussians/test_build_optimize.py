"""``build --optimize``: the fused world is optimized in the same command (off by default on the
CPU, where the optimizer is for toy sizes)."""
import pytest

from inspatio_ros.cli import main
from inspatio_ros.world import World


@pytest.mark.slow      # a build and a short optimization on the CPU, ~15 s on a busy machine
def test_build_optimize_writes_an_optimized_world(tmp_path, capsys):
    street = tmp_path / "street"
    assert main(["synth", "street", "-o", str(street), "--size", "64x36", "--frames", "6", "--moving-cars", "0"]) == 0
    plain, optimized = tmp_path / "plain.safetensors", tmp_path / "opt.safetensors"
    assert main(["--device", "cpu", "build", str(street), "-o", str(plain), "--holdout", "3"]) == 0
    assert World.load(plain).format_version == 1                  # CPU default: no optimization
    assert main(["--device", "cpu", "build", str(street), "-o", str(optimized), "--holdout", "3", "--optimize",
                 "--optimize-iterations", "3", "--optimize-budget", "3000"]) == 0
    out = capsys.readouterr().out
    assert "optimized" in out
    world = World.load(optimized)
    assert world.format_version == 3 and 0 < world.num_gaussians <= 3000 and world.info["optimized"]["steps"] == 3
    assert not (tmp_path / "opt.safetensors.ckpt").exists()


@pytest.mark.parametrize("option, value", [("max-minutes", "0"), ("iterations", "0"), ("depth-weight", "-1")])
def test_build_with_a_bad_optimize_option_fails_before_building(tmp_path, capsys, option, value):
    assert main(["--device", "cpu", "build", str(tmp_path / "nothing"), "-o", str(tmp_path / "w.safetensors"),
                 "--optimize", f"--optimize-{option}", value]) == 2
    err = capsys.readouterr().err.strip()
    # One line naming the option as typed on this command line (not optimize's own --OPTION).
    assert err.count("\n") == 0 and f"--optimize-{option} {value}" in err.replace(".0", "")
    assert f" --{option}" not in err
