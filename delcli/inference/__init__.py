"""Post-processing of a video's candidate segments: tIoU, (Soft-)NMS, segment voting."""

from delcli.inference.nms import (
    DecayMethod,
    Detections,
    NMSConfig,
    batched_nms,
    decay_weight,
    nms,
    segment_voting,
    soft_nms,
)
from delcli.inference.segments import segment_iou, tiou

__all__ = [
    "DecayMethod",
    "Detections",
    "NMSConfig",
    "batched_nms",
    "decay_weight",
    "nms",
    "segment_iou",
    "segment_voting",
    "soft_nms",
    "tiou",
]
