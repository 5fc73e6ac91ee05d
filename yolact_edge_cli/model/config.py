"""Model configurations and COCO facts: the one place for every constant the model uses.

Values follow yolact_edge's `yolact_edge_*_config` objects (see docs/model.md §1),
frozen so that no code path can mutate a shared global the way the reference does.
"""
from __future__ import annotations

from dataclasses import dataclass

INPUT_SIZE = 550
PROTO_SIZE = 138
FPN_SIZES = (69, 35, 18, 9, 5)
FPN_CHANNELS = 256
MASK_DIM = 32
NUM_CLASSES = 81  # class 0 is background
# BaseTransform normalisation, in BGR order as cv2 reads images.
MEANS_BGR = (103.94, 116.78, 123.68)
STD_BGR = (57.38, 57.12, 58.40)


@dataclass(frozen=True)
class BackboneConfig:
    kind: str  # "resnet" or "mobilenetv2"
    selected_layers: tuple[int, ...]
    out_channels: tuple[int, int, int]  # channels of C3, C4, C5
    resnet_blocks: tuple[int, ...] = ()


@dataclass(frozen=True)
class ModelConfig:
    name: str
    backbone: BackboneConfig
    max_size: int = INPUT_SIZE
    num_classes: int = NUM_CLASSES
    fpn_channels: int = FPN_CHANNELS
    num_downsample: int = 2
    mask_dim: int = MASK_DIM
    pred_scales: tuple[int, ...] = (24, 48, 96, 192, 384)
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    # Detect is built with these hard-coded values in Yolact.__init__.
    top_k: int = 200
    conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    max_num_detections: int = 100

    @property
    def num_anchors(self) -> int:
        return len(self.aspect_ratios)

    @property
    def num_priors(self) -> int:
        return self.num_anchors * sum(s * s for s in FPN_SIZES)


RESNET50 = ModelConfig(
    name="yolact_edge_resnet50_config",
    backbone=BackboneConfig("resnet", (1, 2, 3), (512, 1024, 2048), (3, 4, 6, 3)),
)
RESNET101 = ModelConfig(
    name="yolact_edge_config",
    backbone=BackboneConfig("resnet", (1, 2, 3), (512, 1024, 2048), (3, 4, 23, 3)),
)
MOBILENETV2 = ModelConfig(
    name="yolact_edge_mobilenetv2_config",
    backbone=BackboneConfig("mobilenetv2", (3, 4, 6), (32, 64, 160)),
)

CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (RESNET50, RESNET101, MOBILENETV2)}
DEFAULT_CONFIG = RESNET50.name
# one threshold for the detections drawn and listed (show, predict) and for those taken as
# confident when a reduced precision is checked against float32 (metrics/agreement.py)
SHOW_SCORE_THRESHOLD = 0.3

# The deterministic random checkpoint's defaults (docs/random-checkpoint.md): written here, where
# the torch-free CLI can read them for its --help.
RANDOM_CONF_GAIN = 2.0
RANDOM_MASK_BIAS = 0.3
RANDOM_BG_BIAS = 0.0


def get_config(name: str) -> ModelConfig:
    try:
        return CONFIGS[name]
    except KeyError:
        from ..errors import UsageError

        raise UsageError(
            f"unknown config {name!r}",
            hint="choose one of: " + ", ".join(CONFIGS) + " (or 'auto')",
        ) from None


COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)

# COCO category ids of the 80 classes, in class order; COCO_LABEL_MAP maps them to 1..80.
COCO_CATEGORY_IDS = tuple(
    i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
)
COCO_LABEL_MAP = {cat: idx + 1 for idx, cat in enumerate(COCO_CATEGORY_IDS)}
