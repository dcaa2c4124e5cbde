"""The notice for untrained weights: said for filters made up offline, never for a trained network."""

from __future__ import annotations

import pytest

from restyle.weights_notice import FETCH_COMMAND, untrained_notice


@pytest.mark.parametrize(
    "name",
    [
        "vgg19-imagenet",
        "vgg16-imagenet",
        "vgg16-imagenet-keras",
        "file:vgg19.pth",
        "caffe:vgg19-caffe.pth",
        "onnx:vgg16.onnx",
    ],
)
def test_trained_weights_have_no_notice(name: str) -> None:
    assert untrained_notice(name) is None


@pytest.mark.parametrize("name", ["random(seed=0)", "patches(seed=0)"])
def test_weights_made_offline_have_a_notice_naming_them_and_the_fix(name: str) -> None:
    notice = untrained_notice(name)
    assert notice is not None
    assert name in notice and f"`{FETCH_COMMAND}`" in notice
