"""A trained network's events: on a feature dataset, on a video file, and how they are shown.

- `predictor`: a split of a feature dataset → ActivityNet results (`del eval --weights`,
  validation during training);
- `video`: a video file → its events (`del predict`): decode, extract, the network,
  long videos in windows;
- `segments`, `nms`: the post-processing both share — tIoU, (Soft-)NMS, segment
  voting, in pure PyTorch; the package exports these;
- `timeline`, `captions`: events as a picture, as subtitles or Audacity labels;
- `nms_oracle`: slow, literal loops that the tests check `nms` against.
"""

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
