"""The two networks the engine runs, VGG16 and VGG19 (Simonyan & Zisserman, ICLR 2015: configurations D and E),
each described once: everything else about a network (its layer names, which convolutions a torchvision state
dict holds, each layer's channels and receptive field) is derived from its row here.

Both name their layers the way the papers do (``conv3_1``, ``relu3_1``, ``pool3``…), and every VGG16 name is
also a VGG19 name, so a layer name means the same depth of block in both: ``relu4_2`` is the second layer of
the fourth block whichever network runs. VGG19 has three more convolutions (``conv3_4``, ``conv4_4``,
``conv5_4``), which is all that separates them.

Torch-free, so the API can check a request's layers against the network its workers run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache, cached_property

from core.errors import InvalidRequest

# Gatys et al.'s choice, present in both networks: content at relu4_2, style at the first layer of each block.
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

POOL = "M"


@dataclass(frozen=True)
class Reach:
    """Which input pixels one position of a layer depends on: position i reads [stride·i − before,
    stride·i + after]. Each 3×3 convolution widens that by one stride on both sides; each 2×2 pooling doubles
    the stride and widens the far side by the old stride (its window's second cell)."""

    stride: int
    before: int
    after: int

    @property
    def halo_before(self) -> int:
        """Pixels a crop needs before its owned block, rounded up to the stride so the crop stays on the grid."""
        return -(-self.before // self.stride) * self.stride

    @property
    def halo_after(self) -> int:
        """Pixels a crop needs past its owned block: the last owned position starts one stride before its end."""
        return self.after - (self.stride - 1)


@dataclass(frozen=True)
class Network:
    """One VGG configuration: output channels of each 3×3 convolution in order, ``POOL`` for a 2×2 max pooling."""

    name: str
    config: tuple[int | str, ...]

    @cached_property
    def layer_names(self) -> tuple[str, ...]:
        """Every layer in order. torchvision's ``features`` Sequential interleaves conv, relu and pool the same
        way, so a layer's position here is also its index in a torchvision state dict."""
        names: list[str] = []
        block, index = 1, 1
        for item in self.config:
            if item == POOL:
                names.append(f"pool{block}")
                block, index = block + 1, 1
            else:
                names += [f"conv{block}_{index}", f"relu{block}_{index}"]
                index += 1
        return tuple(names)

    @cached_property
    def conv_indices(self) -> tuple[int, ...]:
        """The torchvision ``features.N`` index of each convolution."""
        return tuple(i for i, name in enumerate(self.layer_names) if name.startswith("conv"))

    @cached_property
    def conv_shapes(self) -> tuple[tuple[int, int], ...]:
        """(in, out) channels of each convolution."""
        shapes, channels = [], 3
        for item in self.config:
            if item != POOL:
                shapes.append((channels, int(item)))
                channels = int(item)
        return tuple(shapes)

    @property
    def convolutions(self) -> int:
        return len(self.conv_shapes)

    def has(self, layer: str) -> bool:
        return layer in self.layer_names

    def index(self, layer: str) -> int:
        return self.layer_names.index(layer)

    def deepest(self, layers: Collection[str]) -> str:
        return max(layers, key=self.index)

    def up_to(self, layers: Collection[str]) -> tuple[str, ...]:
        """The layers a pass runs to reach the deepest of ``layers``, in order."""
        return self.layer_names[: self.index(self.deepest(layers)) + 1]

    def channels(self, layer: str) -> int:
        """Channels of ``layer``'s output (a pooling keeps its input's)."""
        convs = sum(name.startswith("conv") for name in self.layer_names[: self.index(layer) + 1])
        return self.conv_shapes[convs - 1][1] if convs else 3

    def reach(self, layer: str) -> Reach:
        stride, before, after = 1, 0, 0
        for name in self.layer_names[: self.index(layer) + 1]:
            if name.startswith("conv"):
                before, after = before + stride, after + stride
            elif name.startswith("pool"):
                after, stride = after + stride, stride * 2
        return Reach(stride, before, after)

    def check_layers(self, layers: Collection[str]) -> None:
        """Raise ``InvalidRequest`` naming the layers this network has when it lacks any of ``layers``."""
        missing = sorted(set(layers) - set(self.layer_names), key=ALL_LAYER_NAMES.index)
        if missing:
            usable = ", ".join(name for name in self.layer_names if not name.startswith("pool"))
            raise InvalidRequest(
                f"{self.name.upper()} has no layer {', '.join(missing)}: the weights this service runs are "
                f"{self.name.upper()}'s, whose layers are {usable}"
            )


VGG16 = Network("vgg16", (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL))
VGG19 = Network(
    "vgg19",
    (64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL),
)
NETWORKS = {network.name: network for network in (VGG16, VGG19)}
# Every layer name either network has, deepest block last: VGG19's, since VGG16's are a subset of them.
ALL_LAYER_NAMES = VGG19.layer_names


def network_with(convolutions: int) -> Network | None:
    """The network with that many convolutions, if any."""
    return next((network for network in NETWORKS.values() if network.convolutions == convolutions), None)


@cache
def stride(layer: str) -> int:
    """How many input pixels one position of ``layer`` steps over: 2 per pooling before it, the same in both
    networks, since their blocks differ only in how many convolutions they hold."""
    return VGG19.reach(layer).stride


def pools_before(layer: str) -> int:
    """Pooling stages a picture passes before reaching ``layer`` (the same in both networks)."""
    return stride(layer).bit_length() - 1


def network_of_weights(weights_name: str) -> Network | None:
    """The network a ``FeatureNet.weights_name`` runs, where the name says it (``vgg16-…``, ``vgg19-…`` and the
    random VGG19); None for a supplied file, whose network only its contents tell."""
    if weights_name.startswith("random("):
        return VGG19
    return NETWORKS.get(weights_name.partition("-")[0])
