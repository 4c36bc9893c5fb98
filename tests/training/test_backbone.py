"""The torchvision -> Keras MobileNetV2 port must classify package-shipped photos correctly."""

import cv2
import numpy as np
import pytest
from skimage import data

from training.backbone import DEFAULT_WEIGHTS, imagenet_classifier, load_torchvision_weights

pytestmark = pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="needs ../shared backbone weights")

# ImageNet-1k class indices (the standard synset order torchvision uses).
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO_CUP = {967, 968, 504}  # espresso, cup, coffee mug
SPACE_SHUTTLE = {812}


def _centre_crop_224(img: np.ndarray) -> np.ndarray:
    """torchvision's eval transform: resize short side to 256, centre-crop 224."""
    h, w = img.shape[:2]
    s = 256 / min(h, w)
    img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    y, x = (h - 224) // 2, (w - 224) // 2
    return img[y : y + 224, x : x + 224].astype(np.float32)


@pytest.fixture(scope="module")
def classifier():
    model = imagenet_classifier(224)
    assert load_torchvision_weights(model) == 105  # every conv, BN and the classifier
    return model


@pytest.mark.parametrize(
    ("photo", "expected"),
    [("chelsea", CAT_CLASSES), ("coffee", ESPRESSO_CUP), ("rocket", SPACE_SHUTTLE)],
)
def test_port_names_the_right_imagenet_class(classifier, photo, expected):
    img = _centre_crop_224(getattr(data, photo)())
    logits = np.asarray(classifier(img[None], training=False))[0]
    top1 = int(np.argmax(logits))
    assert top1 in expected, f"{photo}: top-1 class {top1}, expected one of {expected}"


def test_port_is_confident_on_the_cat(classifier):
    """A broken port (wrong padding or transposes) still often ranks a cat class top-5 but
    with a flat distribution; the real weights put most of the mass on cat classes."""
    img = _centre_crop_224(data.chelsea())
    logits = np.asarray(classifier(img[None], training=False))[0].astype(np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    assert probs[sorted(CAT_CLASSES)].sum() > 0.5
