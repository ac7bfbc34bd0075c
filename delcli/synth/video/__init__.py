"""Synthetic audio-visual videos with a known timeline (`del data synth-video`).

Real mp4 files (H.264 + AAC, written with PyAV) for the end-to-end path
(decode → extract → predict) and the offline demo. Each class is a visual
pattern, an audio pattern or both, chosen to survive H.264 at 64–160 px and to
be told apart by weight-free statistics (hue, edges, motion; log-mel bands,
temporal rhythm):

| class | visual | audio |
|---|---|---|
| red-square+tone-440 | a still red square | a 440 Hz tone |
| blue-circle-moving | a blue disk crossing the frame | — |
| chirp | — | rising 500→3000 Hz sweeps, 2 per second |
| green-flash+clicks | a green rectangle flashing at 3 Hz | a click at each flash |
| noise-bursts | — | white-noise bursts at 4 Hz |
| yellow-stripes | scrolling yellow stripes | — |
| magenta-checker+alarm | a magenta checkerboard | 880/1320 Hz alternating at 4 Hz |
| hum-200 | — | a 200 Hz buzz (odd harmonics) |

- `timeline`: the classes, the settings and each video's plan (which event when);
- `render`: a plan's pictures and soundtrack;
- `mp4`: a plan encoded to an mp4 file; every file written atomically;
- `folder`: the dataset folder (videos, ground truth, manifest), resumable;
- `edge_cases`: awkward files for the decoders' tests.
"""

from delcli.synth.video.edge_cases import EDGE_CASES, write_edge_cases
from delcli.synth.video.folder import SynthVideoResult, write_synth_videos
from delcli.synth.video.timeline import CLASSES, SynthVideoConfig, VideoClass

__all__ = [
    "CLASSES",
    "EDGE_CASES",
    "SynthVideoConfig",
    "SynthVideoResult",
    "VideoClass",
    "write_edge_cases",
    "write_synth_videos",
]
