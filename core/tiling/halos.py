"""How far past its owned block a tile's crop reaches, and on which grid it starts: the reach of a layer.

The arithmetic is the network's (``core.networks.Reach``, derived from its row of layers); this module looks
it up, cached per network and layer, for the deepest layer a run uses, whose reach covers every shallower one.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import cache

from core.networks import Network
from core.networks import Reach as Reach  # part of this module's interface: what ``reach`` returns


@cache
def reach(network: Network, layer: str) -> Reach:
    return network.reach(layer)


def deepest_reach(network: Network, layers: Collection[str]) -> Reach:
    return reach(network, network.deepest(layers))
