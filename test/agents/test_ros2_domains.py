"""The ros2 scenario controller's ROS domains: scenarios side by side on one machine never share one."""
import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.ros import scenario_bridge
from inspatio_ros.ros.scenario_bridge import AUTO_DOMAINS, claim_domain, default_domain


@pytest.fixture(autouse=True)
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(scenario_bridge, "domain_lock_dir", lambda: tmp_path / "domains")


def test_scenarios_that_hash_alike_get_different_free_domains():
    start = default_domain("lane_change")
    first, lock1 = claim_domain(start, fixed=False, where="scenario a")
    second, lock2 = claim_domain(start, fixed=False, where="scenario b")     # same start: a collision by hash
    assert first == start and second != first and second in AUTO_DOMAINS
    lock1.close()
    third, lock3 = claim_domain(start, fixed=False, where="scenario c")      # freed when the first ended
    assert third == start
    lock2.close(), lock3.close()


def test_the_search_wraps_around_the_range():
    last = AUTO_DOMAINS[-1]
    held = claim_domain(last, fixed=False, where="a")
    domain, lock = claim_domain(last, fixed=False, where="b")
    assert held[0] == last and domain == AUTO_DOMAINS[0]
    held[1].close(), lock.close()


def test_a_given_domain_in_use_is_one_clear_error():
    domain, lock = claim_domain(7, fixed=True, where="scenario a: controller ros2")
    assert domain == 7
    with pytest.raises(InputError, match="scenario b: controller ros2: domain_id 7 is in use") as err:
        claim_domain(7, fixed=True, where="scenario b: controller ros2")
    assert "its own domain_id" in err.value.fix
    lock.close()
    assert claim_domain(7, fixed=True, where="c")[0] == 7


def test_every_domain_taken_is_one_clear_error():
    locks = [claim_domain(d, fixed=True, where="x")[1] for d in AUTO_DOMAINS]
    with pytest.raises(InputError, match="all ROS domains 100-199 are in use"):
        claim_domain(150, fixed=False, where="scenario z")
    for lock in locks:
        lock.close()


@pytest.mark.parametrize("bad", [-1, 233, 1.5, "7", True])
def test_a_bad_domain_id_is_refused_when_the_scenario_is_made(bad, tmp_path):
    from types import SimpleNamespace

    with pytest.raises(InputError, match="domain_id"):
        scenario_bridge.Ros2Controller(SimpleNamespace(name="s"), None, out_dir=tmp_path, domain_id=bad)
