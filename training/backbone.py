"""MobileNetV2 in backend-neutral Keras 3, initialised from torchvision's ImageNet weights.

torchvision pads 3x3 stride-2 convolutions symmetrically (padding=1) while
keras.applications pads (0, 1); building the network here with explicit symmetric padding
makes the port exact. Layer names follow the torchvision state-dict keys
(`features.N...`) so the weight loader is a plain name mapping.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from autocrop.preprocess import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_WEIGHTS = Path("../shared/data/weights/backbone/mobilenet_v2_imagenet_torchvision.npz")
#: torchvision's inverted-residual settings: expansion t, channels c, repeats n, stride s.
INVERTED_RESIDUAL_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]
#: Index of the last `features.N` block at each output stride.
STRIDE_TAPS = {4: 3, 8: 6, 16: 13, 32: 17}
BN_EPSILON = 1e-5  # torch's BatchNorm default


class ImageNetNormalize(layers.Layer):
    """RGB in [0, 255] -> (x/255 - mean) / std, inside the model so every runtime agrees."""

    def call(self, x):
        mean = keras.ops.convert_to_tensor(np.array(IMAGENET_MEAN, "float32") * 255.0)
        std = keras.ops.convert_to_tensor(np.array(IMAGENET_STD, "float32") * 255.0)
        return (x - mean) / std


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, depthwise: bool, relu: bool,
             bn_name: str | None = None, dilation: int = 1):
    if kernel > 1:  # symmetric padding, as torchvision does
        pad = dilation * (kernel - 1) // 2
        x = layers.ZeroPadding2D(pad, name=f"{name}.pad")(x)
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="valid", use_bias=False,
                                   dilation_rate=dilation, name=name)(x)
    else:
        x = layers.Conv2D(filters, kernel, strides=stride, padding="valid", use_bias=False,
                          dilation_rate=dilation, name=name)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.9, name=bn_name or f"{name}.bn")(x)
    if relu:
        x = layers.ReLU(max_value=6.0, name=f"{name}.relu")(x)
    return x


def _inverted_residual(x, index: int, expand: int, out_ch: int, stride: int):
    in_ch = x.shape[-1]
    p = f"features.{index}.conv"
    y = x
    if expand == 1:
        y = _conv_bn(y, in_ch, 3, stride, f"{p}.0.0", True, True, f"{p}.0.1")
        y = _conv_bn(y, out_ch, 1, 1, f"{p}.1", False, False, f"{p}.2")
    else:
        hidden = in_ch * expand
        y = _conv_bn(y, hidden, 1, 1, f"{p}.0.0", False, True, f"{p}.0.1")
        y = _conv_bn(y, hidden, 3, stride, f"{p}.1.0", True, True, f"{p}.1.1")
        y = _conv_bn(y, out_ch, 1, 1, f"{p}.2", False, False, f"{p}.3")
    if stride == 1 and in_ch == out_ch:
        y = layers.Add(name=f"features.{index}.add")([x, y])
    return y


def mobilenet_v2_features(inputs, include_top_conv: bool = False, start: int = 0):
    """Build the feature extractor on `inputs` (RGB [0, 255]); return {stride: tensor}.

    With `start` > 0, `inputs` is the output of block `start - 1` and only the blocks from
    `start` on are built (a readout that fine-tunes the encoder's top on cached taps).
    """
    if start == 0:
        x = ImageNetNormalize(name="imagenet_normalize")(inputs)
        x = _conv_bn(x, 32, 3, 2, "features.0.0", False, True, "features.0.1")
    else:
        x = inputs
    taps = {}
    index = 1
    for expand, channels, repeats, stride in INVERTED_RESIDUAL_SETTINGS:
        for r in range(repeats):
            if index >= start:
                x = _inverted_residual(x, index, expand, channels, stride if r == 0 else 1)
                for s, tap in STRIDE_TAPS.items():
                    if tap == index:
                        taps[s] = x
            index += 1
    if include_top_conv:
        x = _conv_bn(x, 1280, 1, 1, "features.18.0", False, True, "features.18.1")
        taps["top"] = x
    return taps


def imagenet_classifier(input_size: int = 224) -> keras.Model:
    """The whole torchvision MobileNetV2 classifier (for testing the port)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    taps = mobilenet_v2_features(inputs, include_top_conv=True)
    x = layers.GlobalAveragePooling2D(name="pool")(taps["top"])
    logits = layers.Dense(1000, name="classifier.1")(x)
    return keras.Model(inputs, logits, name="mobilenet_v2_imagenet")


def load_torchvision_weights(model: keras.Model, npz_path: Path | str = DEFAULT_WEIGHTS) -> int:
    """Copy torchvision state-dict arrays into the layers of `model` named after them.

    Returns the number of layers loaded. Raises if a backbone layer has no weights.
    """
    weights = np.load(npz_path)
    loaded = 0
    for layer in model.layers:
        name = layer.name
        if isinstance(layer, layers.DepthwiseConv2D):
            w = weights[f"{name}.weight"]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            layer.set_weights([w.transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D) and f"{name}.weight" in weights:
            w = weights[f"{name}.weight"]  # (out, in, kh, kw) -> (kh, kw, in, out)
            layer.set_weights([w.transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization) and f"{name}.running_mean" in weights:
            layer.set_weights([weights[f"{name}.weight"], weights[f"{name}.bias"],
                               weights[f"{name}.running_mean"], weights[f"{name}.running_var"]])
        elif isinstance(layer, layers.Dense) and f"{name}.weight" in weights:
            layer.set_weights([weights[f"{name}.weight"].T, weights[f"{name}.bias"]])
        else:
            if name.startswith("features.") and layer.weights:
                raise KeyError(f"no torchvision weights for backbone layer {name}")
            continue
        loaded += 1
    return loaded
