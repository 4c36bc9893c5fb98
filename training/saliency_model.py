"""The saliency network: MobileNetV2 encoder, multi-scale context, light U-Net decoder.

Backend-neutral Keras 3 (keras.layers / keras.ops only), so the same code trains with the
TensorFlow, JAX or PyTorch backend and converts to TFLite with TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers, ops

from autocrop.preprocess import CANVAS, OUTPUT_STRIDE

from .backbone import STRIDE_TAPS, mobilenet_v2_features


@dataclass(frozen=True)
class SaliencyNetConfig:
    """Architecture hyper-parameters (saved beside the weights)."""

    canvas: int = CANVAS
    context_channels: int = 96  # width of each dilated branch on the stride-32 features
    dilations: tuple[int, ...] = (1, 2, 4)  # receptive-field scales of the context module
    decoder_channels: tuple[int, int, int] = (96, 64, 32)  # at strides 16, 8, 4
    # Centre bias as a property of a data set, not of content (UNISAL): with priors > 1 the
    # training net takes a second input, the photo's data set (one-hot), and adds that set's
    # learned prior map. Export replaces them with one map (`inference_net`); the run-time
    # prior on top is the card's (training.prior_select).
    priors: int = 1
    deep_tap: bool = False  # also read the classifier's 1280-channel stride-32 conv
    # Frozen-encoder runs: fine-tune the encoder's stride-32 blocks (features.14-17, and the
    # 1280-channel conv with deep_tap) on cached stride-16 taps; False keeps all of it frozen.
    tune_top: bool = False


class LearnedPrior(layers.Layer):
    """A learned additive map over the canvas (people's centre bias, learned, not assumed)."""

    def build(self, input_shape):
        self.prior = self.add_weight(
            shape=(int(input_shape[1]), int(input_shape[2]), 1), initializer="zeros", name="prior"
        )

    def call(self, x):
        return x + self.prior


class DatasetPriors(layers.Layer):
    """One learned additive map per training data set, picked by a one-hot input."""

    def __init__(self, count: int, **kw):
        super().__init__(**kw)
        self.count = count

    def build(self, input_shape):
        shape = input_shape[0]
        self.prior = self.add_weight(
            shape=(self.count, int(shape[1]), int(shape[2]), 1), initializer="zeros", name="prior"
        )

    def call(self, inputs):
        x, onehot = inputs
        return x + ops.einsum("bn,nhwc->bhwc", onehot, self.prior)

    def get_config(self):
        return {**super().get_config(), "count": self.count}


def _sep_conv(x, filters: int, name: str, dilation: int = 1):
    x = layers.SeparableConv2D(
        filters, 3, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}.sep"
    )(x)
    x = layers.BatchNormalization(name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def _conv1x1(x, filters: int, name: str):
    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}.conv")(x)
    x = layers.BatchNormalization(name=f"{name}.bn")(x)
    return layers.ReLU(name=f"{name}.relu")(x)


def build_saliency_net(config: SaliencyNetConfig = SaliencyNetConfig(),
                       inference: bool = False) -> keras.Model:
    """RGB canvas [0, 255] (1, S, S, 3) -> saliency in [0, 1] at (1, S/4, S/4, 1).

    With `config.priors > 1` the training net also takes `dataset` (one-hot, priors wide);
    `inference=True` builds the image-only net with one prior map (`prior`), into which
    export writes the run-time prior (`runtime_prior_map`).
    """
    inputs = keras.Input((config.canvas, config.canvas, 3), name="image")
    taps = mobilenet_v2_features(inputs, include_top_conv=config.deep_tap)
    logits = readout(taps, config)
    logits, extra = _with_prior(logits, config, inference)
    saliency = layers.Activation("sigmoid", name="saliency")(logits)
    assert saliency.shape[1] == config.canvas // OUTPUT_STRIDE
    return keras.Model([inputs, *extra] if extra else inputs, saliency, name="autocrop_saliency")


def _with_prior(logits, config: SaliencyNetConfig, inference: bool):
    """(logits + prior, extra inputs): per-set priors with a `dataset` input, or one map."""
    if config.priors > 1 and not inference:
        dataset = keras.Input((config.priors,), name="dataset")
        return DatasetPriors(config.priors, name="priors")([logits, dataset]), [dataset]
    return LearnedPrior(name="prior")(logits), []


def learned_prior_maps(model: keras.Model) -> np.ndarray:
    """(sets, S/4, S/4) learned prior logits of a training net (one row for a single prior)."""
    names = {layer.name for layer in model.layers}
    weights = model.get_layer("priors" if "priors" in names else "prior").get_weights()[0]
    return np.asarray(weights).reshape(-1, weights.shape[-3], weights.shape[-2])


def inference_net(model: keras.Model, config: SaliencyNetConfig, prior_map: np.ndarray,
                  backbone=None) -> keras.Model:
    """The image-only net with `model`'s weights and `prior_map` (S/4 x S/4 logits) as its prior.

    `model` may hold only part of the net (a frozen run's readout): the layers it lacks keep
    the ImageNet weights loaded from `backbone`.
    """
    net = build_saliency_net(config, inference=True)
    if backbone is not None:
        from .backbone import load_torchvision_weights

        load_torchvision_weights(net, backbone)
    trained = {layer.name for layer in model.layers}
    for layer in net.layers:
        if layer.name == "prior":
            layer.set_weights([np.asarray(prior_map, np.float32).reshape(layer.get_weights()[0].shape)])
        elif layer.weights and layer.name in trained:
            layer.set_weights(model.get_layer(layer.name).get_weights())
        elif layer.weights and backbone is None:
            raise KeyError(f"no trained weights for layer {layer.name}")
    return net


def readout(taps: dict, config: SaliencyNetConfig):
    """Encoder taps {stride: tensor} -> saliency logits at stride 4 (before any prior)."""
    c32 = taps[32]
    if config.deep_tap:
        # The classifier's 1280-channel conv: the most semantic features MobileNetV2 has
        # (DeepGaze II reads saliency from deep layers of a frozen ImageNet net).
        c32 = layers.Concatenate(name="ctx.in")([c32, taps["top"]])
    # Multi-scale context: parallel dilated branches plus an image-level branch.
    branches = [_conv1x1(c32, config.context_channels, "ctx.b0")]
    for d in config.dilations:
        branches.append(_sep_conv(c32, config.context_channels, f"ctx.d{d}", dilation=d))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="ctx.pool")(c32)
    pooled = _conv1x1(pooled, config.context_channels, "ctx.gp")
    side = config.canvas // 32
    branches.append(layers.UpSampling2D(size=side, name="ctx.gp.up")(pooled))
    x = layers.Concatenate(name="ctx.cat")(branches)
    x = _conv1x1(x, config.decoder_channels[0], "ctx.fuse")
    # Decoder: upsample and fuse the skip features at strides 16, 8, 4.
    for stride, channels in zip((16, 8, 4), config.decoder_channels):
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{stride}.up")(x)
        skip = _conv1x1(taps[stride], channels, f"dec{stride}.skip")
        x = layers.Concatenate(name=f"dec{stride}.cat")([x, skip])
        x = _sep_conv(x, channels, f"dec{stride}.a")
    return layers.Conv2D(1, 3, padding="same", name="head")(x)


def tap_shapes(config: SaliencyNetConfig) -> dict:
    """{tap: (h, w, channels)} of the encoder outputs the readout reads."""
    c = config.canvas
    shapes: dict = {4: (c // 4, c // 4, 24), 8: (c // 8, c // 8, 32), 16: (c // 16, c // 16, 96),
                    32: (c // 32, c // 32, 320)}
    if config.deep_tap:
        shapes["top"] = (c // 32, c // 32, 1280)
    return shapes


def readout_net(config: SaliencyNetConfig) -> keras.Model:
    """The trainable part alone, on cached encoder taps (a frozen-encoder run trains only this)."""
    taps = {k: keras.Input(shape, name=f"tap{k}") for k, shape in tap_shapes(config).items()}
    inputs = list(taps.values())
    if config.tune_top:
        top = mobilenet_v2_features(taps[16], include_top_conv=config.deep_tap, start=STRIDE_TAPS[16] + 1)
        taps = {**taps, **top}
        inputs = [taps[k] for k in (4, 8, 16)]
    logits, extra = _with_prior(readout(taps, config), config, inference=False)
    return keras.Model(inputs + extra, layers.Activation("sigmoid", name="saliency")(logits), name="readout")


def set_backbone_trainable(model: keras.Model, trainable: bool) -> None:
    """(Un)freeze the ImageNet encoder; its BatchNorm layers always stay frozen (small batches)."""
    for layer in model.layers:
        if layer.name.startswith("features."):
            layer.trainable = trainable and not isinstance(layer, layers.BatchNormalization)


# --- losses: KL divergence, CC and NSS, as the saliency literature combines them -----------

EPS = 1e-7


def _spatial_sum(x):
    return ops.sum(x, axis=(1, 2, 3), keepdims=True)


def kl_loss(density, pred):
    """KL(human density || predicted distribution), both normalised to sum 1."""
    q = density / (_spatial_sum(density) + EPS)
    p = pred / (_spatial_sum(pred) + EPS)
    return ops.sum(q * ops.log(EPS + q / (p + EPS)), axis=(1, 2, 3))


def _standardise(x):
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
    std = ops.std(x, axis=(1, 2, 3), keepdims=True)
    return (x - mean) / (std + EPS)


def cc_score(density, pred):
    """Pearson correlation per sample."""
    return ops.mean(_standardise(density) * _standardise(pred), axis=(1, 2, 3))


def nss_score(fixations, pred):
    """Mean standardised prediction at fixation pixels, per sample."""
    hits = ops.sum(_standardise(pred) * fixations, axis=(1, 2, 3))
    return hits / (ops.sum(fixations, axis=(1, 2, 3)) + EPS)


@dataclass(frozen=True)
class LossWeights:
    kl: float = 1.0
    cc: float = 1.0
    nss: float = 0.1


class SaliencyLoss(keras.losses.Loss):
    """w_kl * KL - w_cc * CC - w_nss * NSS; y_true stacks (density, fixation map) on channels."""

    def __init__(self, weights: LossWeights = LossWeights(), name: str = "saliency_loss", **kw):
        super().__init__(name=name, **kw)
        self.weights = weights

    def call(self, y_true, y_pred):
        density, fixations = y_true[..., :1], y_true[..., 1:2]
        w = self.weights
        return (w.kl * kl_loss(density, y_pred) - w.cc * cc_score(density, y_pred)
                - w.nss * nss_score(fixations, y_pred))


def cc_metric(y_true, y_pred):
    return cc_score(y_true[..., :1], y_pred)


def nss_metric(y_true, y_pred):
    return nss_score(y_true[..., 1:2], y_pred)
