"""Propagation's "standing on the road" candidate (ingest/mvs/propagate.py): a blank surface rising
from the road keeps the depth where its column meets the road, not the depth of the facade behind
it. Small synthetic arrays, no rendering (fast)."""
import torch

from inspatio_ros.ingest.mvs.propagate import propagation_candidates

H, W = 60, 80
HORIZON = 20


def _street():
    """Inverse depth of a road plane below row HORIZON, a facade 40 units away above, and a blank
    box (a parked car's side) at rows 30-44, columns 50-69, standing on the road at row 45."""
    v = torch.arange(H, dtype=torch.float32)[:, None].expand(H, W)
    road = torch.where(v > HORIZON, (v - HORIZON) / 300.0, torch.tensor(float("nan")))
    gray = torch.full((H, W), 0.40)                 # asphalt
    gray[:HORIZON + 5] = 0.70                       # facade
    gray[30:45, 50:70] = 0.15                       # the car's dark side
    rho = torch.full((H, W), float("nan"))
    rho[55:] = road[55:]                            # matched road near the bottom
    rho[8:12] = 1 / 40.0                            # matched windows of the facade
    return rho, road, gray


def test_a_blank_box_on_the_road_stands_where_its_column_meets_the_road():
    rho, road, gray = _street()
    cand = propagation_candidates(rho, road, gray=gray, road_colour=0.05)
    standing, road_cand = cand[-2], cand[-1]
    box = standing[30:45, 50:70]
    assert torch.isfinite(box).all()
    # The contact is row 45 (the first road-grey pixel below the box): the box keeps its depth.
    assert torch.allclose(box, road[45, 50:70].expand_as(box))
    assert torch.isnan(road_cand[30:45, 50:70]).all()   # not road: its grey differs
    # The road itself is not "standing": it has the road plane.
    assert torch.isnan(standing[46:55]).all() and torch.isfinite(road_cand[46:55]).all()
    # The facade's constant candidate from above (what won on blank car sides) is 5x too far.
    above = cand[4][30:45, 50:70]
    assert torch.isfinite(above[:5]).all()          # within reach of the facade's windows (half the height)
    assert float((1 / above[torch.isfinite(above)]).min()) > 3 * float((1 / box).max())


def test_no_standing_surface_through_a_measured_pixel_of_another_depth():
    rho, road, gray = _street()
    rho[40, 50:70] = 1 / 90.0                       # something measured far away inside the box's columns
    standing = propagation_candidates(rho, road, gray=gray, road_colour=0.05)[-2]
    assert torch.isnan(standing[30:40, 50:70]).all()   # above the measured pixel: not this contact
    assert torch.isfinite(standing[41:45, 50:70]).all()
    # A measured pixel of the standing depth itself (the box's own texture) does not stop it.
    rho, road, gray = _street()
    rho[40, 50:70] = road[45, 50:70]
    standing = propagation_candidates(rho, road, gray=gray, road_colour=0.05)[-2]
    assert torch.isfinite(standing[30:40, 50:70]).all()


def test_no_contact_beyond_the_road_reach_nor_without_grey():
    rho, road, gray = _street()
    reach = torch.zeros((H, W), dtype=torch.bool)
    reach[40:] = True                               # the road is trusted from row 40 down
    standing = propagation_candidates(rho, road, gray=gray, road_colour=0.05, road_reach=reach)[-2]
    assert torch.isfinite(standing[30:45, 50:70]).all()    # contact row 45: within reach
    # A facade of the road's grey: the road-grey run reaches the horizon, where the road plane is
    # 70 m off; out of reach, so no standing candidate for the facade above it.
    gray[:HORIZON + 5] = 0.40
    rho[8:12] = float("nan")
    standing = propagation_candidates(rho, road, gray=gray, road_colour=0.05, road_reach=reach)[-2]
    assert torch.isnan(standing[:HORIZON]).all()
    unlimited = propagation_candidates(rho, road, gray=gray, road_colour=0.05)[-2]
    assert torch.isfinite(unlimited[:HORIZON, :40]).all()  # without the reach it would stand there
    # Without grey nothing tells the road from what stands on it: no candidate.
    plain = propagation_candidates(rho, road)
    assert torch.isnan(plain[-2]).all() and plain.shape[0] == 8
