"""The two networks, VGG16 and VGG19, as the engine, the tiler and the API see them: layer names, where each
convolution sits in a torchvision state dict, channels, receptive fields, and which network a weights name runs."""

from __future__ import annotations

import pytest
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from core.errors import InvalidRequest
from core.networks import (
    VGG16,
    VGG19,
    Network,
    Reach,
    network_of_weights,
    network_with,
    pools_before,
    stride,
)
from tests.support.weights_files import TORCHVISION_CONV_INDICES

# The six layers VGG19 has and VGG16 lacks: each block of VGG19 from the third on has a fourth convolution.
VGG19_ONLY = ("conv3_4", "relu3_4", "conv4_4", "relu4_4", "conv5_4", "relu5_4")


def test_vgg16_has_vgg19s_layers_but_the_fourth_convolution_of_blocks_three_to_five() -> None:
    assert [name for name in VGG19.layer_names if not VGG16.has(name)] == list(VGG19_ONLY)


def test_every_vgg16_layer_name_is_a_vgg19_layer_name_in_the_same_order() -> None:
    assert [name for name in VGG19.layer_names if name in VGG16.layer_names] == list(VGG16.layer_names)


def test_vgg16_names_its_layers_as_the_paper_does() -> None:
    assert VGG16.layer_names == (
        *("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"),
        *("conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2"),
        *("conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "pool3"),
        *("conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "pool4"),
        *("conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "pool5"),
    )


def test_vgg16_convolutions_sit_where_torchvision_puts_them() -> None:
    assert VGG16.conv_indices == (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


@pytest.mark.parametrize(("network", "config"), [(VGG16, "D"), (VGG19, "E")], ids=["vgg16", "vgg19"])
def test_each_network_is_torchvisions_configuration_with_the_same_feature_indices(
    network: Network, config: str
) -> None:
    # torchvision's own builder of the `features` Sequential (no weights, no classifier: small and offline).
    features = make_layers(cfgs[config])
    assert list(network.config) == cfgs[config]
    assert network.conv_indices == tuple(i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d))
    assert network.conv_shapes == tuple(
        (layer.in_channels, layer.out_channels) for layer in features if isinstance(layer, nn.Conv2d)
    )


def test_vgg19_convolutions_sit_where_the_weights_files_of_the_tests_put_them() -> None:
    assert VGG19.conv_indices == TORCHVISION_CONV_INDICES


def test_a_layer_has_its_convolutions_channels_and_a_pooling_keeps_its_inputs() -> None:
    expected = {"relu1_1": 64, "pool1": 64, "conv3_3": 256, "pool3": 256, "relu4_2": 512, "relu5_3": 512}
    assert {name: VGG16.channels(name) for name in expected} == expected


# Reach, by hand: each 3×3 convolution widens both sides by the stride so far; each 2×2 pooling widens the far
# side by the stride so far, then doubles the stride.
#                      VGG16 (before, after, stride)      VGG19 (before, after, stride)
#   block 1, 2 convs:  2, 2, 1   pool1 → 2, 3, 2          2, 2, 1   pool1 → 2, 3, 2
#   block 2, 2 convs:  6, 7, 2   pool2 → 6, 9, 4          6, 7, 2   pool2 → 6, 9, 4
#   block 3:           3 convs: 18, 21, 4                 4 convs: 22, 25, 4
#                      pool3 → 18, 25, 8                  pool3 → 22, 29, 8
#   block 4:           3 convs: 42, 49, 8                 4 convs: 54, 61, 8
#                      pool4 → 42, 57, 16                 pool4 → 54, 69, 16
#   conv5_1:           58, 73, 16                         70, 85, 16
# The receptive fields this gives, before + after + 1 = 132 and 156 px, are the published ones of conv5_1.
@pytest.mark.parametrize(
    ("network", "expected"), [(VGG16, Reach(16, 58, 73)), (VGG19, Reach(16, 70, 85))], ids=["vgg16", "vgg19"]
)
def test_the_reach_of_relu5_1_counts_the_convolutions_of_its_own_network(network: Network, expected: Reach) -> None:
    assert network.reach("relu5_1") == expected


def test_a_layer_steps_over_as_many_pixels_in_either_network() -> None:
    for name in VGG16.layer_names:
        assert VGG16.reach(name).stride == VGG19.reach(name).stride == stride(name), name
        assert 2 ** pools_before(name) == stride(name), name


def test_layers_a_network_has_pass_the_check() -> None:
    VGG16.check_layers({"relu1_1", "relu4_2", "relu5_3"})
    VGG19.check_layers(set(VGG19.layer_names))


def test_the_check_names_the_missing_layer_and_the_layers_the_network_has() -> None:
    with pytest.raises(InvalidRequest) as refused:
        VGG16.check_layers({"relu4_2", "relu5_4"})
    usable = ", ".join(name for name in VGG16.layer_names if not name.startswith("pool"))
    assert refused.value.message == (
        f"VGG16 has no layer relu5_4: the weights this service runs are VGG16's, whose layers are {usable}"
    )


def test_the_check_names_every_missing_layer_shallowest_first() -> None:
    with pytest.raises(InvalidRequest, match=r"^VGG16 has no layer conv3_4, relu5_4: "):
        VGG16.check_layers({"relu5_4", "relu1_1", "conv3_4"})


@pytest.mark.parametrize(("convolutions", "network"), [(13, VGG16), (16, VGG19), (14, None), (0, None)])
def test_a_count_of_convolutions_names_the_network_that_has_as_many(convolutions: int, network: Network | None) -> None:
    assert network_with(convolutions) is network


@pytest.mark.parametrize(
    ("weights_name", "network"),
    [
        ("vgg19-imagenet", VGG19),
        ("vgg16-imagenet", VGG16),
        ("vgg16-imagenet-keras", VGG16),
        ("random(seed=0)", VGG19),
        ("file:vgg16.pth", None),
        ("caffe:vgg19.caffemodel.pth", None),
        ("onnx:vgg16.onnx", None),
    ],
)
def test_a_weights_name_says_its_network_unless_it_is_a_supplied_file(
    weights_name: str, network: Network | None
) -> None:
    assert network_of_weights(weights_name) is network
