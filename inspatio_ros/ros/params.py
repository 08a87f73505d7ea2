"""The node's parameters, seen from the ROS layer.

Names, defaults, units, ranges and meanings live in the ROS-free core: the frozen dataclasses of
:mod:`inspatio_ros.sim.settings` (:class:`~inspatio_ros.sim.settings.NodeSettings`), mapped to and
from dotted parameter names and YAML by :mod:`inspatio_ros.sim.parameters`. Camera rig parameters
(``cameras.*``) are read by :func:`inspatio_ros.sim.rig.load_rig` and renderer ones (``render.*``)
by :mod:`inspatio_ros.config`. What is left here is the one ROS-specific step: a QoS override
applied to a topic's default :class:`~inspatio_ros.ros.transport.Qos`.
"""
from __future__ import annotations

from ..sim.parameters import split_parameters
from ..sim.settings import NodeSettings, QosSettings
from .transport import Qos

__all__ = ["split_parameters", "NodeSettings", "qos_of"]


def qos_of(qos: QosSettings, key: str, default: Qos) -> Qos:
    """``default`` with the reliability and depth of the ``qos.<key>.*`` parameters where set."""
    override = getattr(qos, key)
    return Qos(override.reliability or default.reliability, default.durability, override.depth or default.depth)
