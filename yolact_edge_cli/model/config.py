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
class LabelSet:
    """The classes a model predicts: names in class order (class 0 = the first foreground class)
    and the dataset's category id of each."""
    dataset: str
    names: tuple[str, ...]
    category_ids: tuple[int, ...]
    listed_in: str  # the page that lists the names for users (tests hold it equal to `names`)

    @property
    def label_map(self) -> dict[int, int]:
        """category id → 1-based class index (the reference's `label_map`)."""
        return {cat: index + 1 for index, cat in enumerate(self.category_ids)}


# A video's frames that run the full network: every KEYFRAME_INTERVAL-th (the reference's
# every_k_frames); the frames between reuse the latest keyframe's features (docs/video.md §2).
KEYFRAME_INTERVAL = 5


@dataclass(frozen=True)
class VideoConfig:
    """The temporal feature reuse of `yolact_edge_vid_*` (docs/video.md): FlowNetMini on the C3
    laterals of the frame and its keyframe, warping the keyframe's P4 and P5."""
    use_spa: bool
    flow_channels: int = 64  # flow.reduce_channels[-1] and flow.encode_channels


@dataclass(frozen=True)
class ModelConfig:
    name: str
    backbone: BackboneConfig
    labels: LabelSet
    video: VideoConfig | None = None
    max_size: int = INPUT_SIZE
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
    def num_classes(self) -> int:
        """Foreground classes plus background (class 0 of the network's scores)."""
        return len(self.labels.names) + 1

    @property
    def num_anchors(self) -> int:
        return len(self.aspect_ratios)

    @property
    def num_priors(self) -> int:
        return self.num_anchors * sum(s * s for s in FPN_SIZES)


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
COCO = LabelSet("COCO", COCO_CLASSES, COCO_CATEGORY_IDS, "docs/model.md §12")
COCO_LABEL_MAP = COCO.label_map

# The 40 YouTube-VIS classes of the video checkpoints, category ids 1..40 in order.
YOUTUBE_VIS_CLASSES = (
    "person", "giant_panda", "lizard", "parrot", "skateboard", "sedan", "ape", "dog", "snake",
    "monkey", "hand", "rabbit", "duck", "cat", "cow", "fish", "train", "horse", "turtle", "bear",
    "motorbike", "giraffe", "leopard", "fox", "deer", "owl", "surfboard", "airplane", "truck",
    "zebra", "tiger", "elephant", "snowboard", "boat", "shark", "mouse", "frog", "eagle",
    "earless_seal", "tennis_racket",
)
YOUTUBE_VIS = LabelSet("YouTube-VIS", YOUTUBE_VIS_CLASSES, tuple(range(1, 41)), "docs/video.md §1")
LABEL_SETS = (COCO, YOUTUBE_VIS)

_RESNET50_BACKBONE = BackboneConfig("resnet", (1, 2, 3), (512, 1024, 2048), (3, 4, 6, 3))
_RESNET101_BACKBONE = BackboneConfig("resnet", (1, 2, 3), (512, 1024, 2048), (3, 4, 23, 3))
RESNET50 = ModelConfig("yolact_edge_resnet50_config", _RESNET50_BACKBONE, COCO)
RESNET101 = ModelConfig("yolact_edge_config", _RESNET101_BACKBONE, COCO)
MOBILENETV2 = ModelConfig(
    "yolact_edge_mobilenetv2_config", BackboneConfig("mobilenetv2", (3, 4, 6), (32, 64, 160)), COCO)
# The video configs (docs/video.md §1). The reference has no R-50 `_vid_minimal` config; this one
# is its R-101 config with the R-50 backbone, as the reference harness builds it.
VID_RESNET101 = ModelConfig("yolact_edge_vid_config", _RESNET101_BACKBONE, YOUTUBE_VIS,
                            VideoConfig(use_spa=True))
VID_RESNET50 = ModelConfig("yolact_edge_vid_resnet50_config", _RESNET50_BACKBONE, YOUTUBE_VIS,
                           VideoConfig(use_spa=True))
VID_MINIMAL_RESNET101 = ModelConfig("yolact_edge_vid_minimal_config", _RESNET101_BACKBONE,
                                    YOUTUBE_VIS, VideoConfig(use_spa=False))
VID_MINIMAL_RESNET50 = ModelConfig("yolact_edge_vid_minimal_resnet50_config", _RESNET50_BACKBONE,
                                   YOUTUBE_VIS, VideoConfig(use_spa=False))

CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (
    RESNET50, RESNET101, MOBILENETV2, VID_RESNET101, VID_RESNET50, VID_MINIMAL_RESNET101,
    VID_MINIMAL_RESNET50)}
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

