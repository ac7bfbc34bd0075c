"""Let the decoder drop the frames that no output frame shows.

`iter_frames` shows, for target time τ_k = start + k/fps, the last frame whose
time is at or before τ_k. A frame at time t whose successor (in display order)
is at t' is therefore shown iff some τ_k lies in [t, t'). Resampling 30 fps to
a 12.5 fps grid shows fewer than half of the frames; the others need decoding
only when later frames are predicted from them. FFmpeg's `skip_frame =
NONREF` drops exactly the frames nothing refers to, before their pixels are
made, so setting it for an unshown frame's packet (and back to DEFAULT for the
next) saves their decoding and leaves every other frame bit-identical.

The successor of a packet is found among the packets around it in decode order
(`LOOKAHEAD` ahead, `REMEMBERED` behind); B-frame reordering is far shorter.
When it is not there, or a time is missing, the frame counts as shown: an
estimate can only make a frame look needed, never drop one that is shown.
Only H.264 and HEVC, whose decoders honour the flag per packet, are skipped.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator

from delcli.io.media import packet_seconds

LOOKAHEAD = 32  # packets read ahead of the one being decided
REMEMBERED = 64  # packets already decided that may still be a successor
CODECS = frozenset({"h264", "hevc"})
EPSILON = 1e-6  # as in iter_frames: times within this of a target count as at it


class UnshownFrameSkipper:
    """Wraps the demuxed packets of a video stream; see the module docstring."""

    def __init__(self, stream, origin: float, start: float, fps: float, count: int) -> None:
        self.context = stream.codec_context
        self.origin, self.start, self.fps, self.count = origin, start, fps, count
        self.enabled = stream.codec_context.name in CODECS and count > 0
        self.skipped = 0

    def packets(self, demuxed: Iterator) -> Iterator:
        """`demuxed`, in order; the decoder's `skip_frame` is set before each is handed out.
        A read error is raised after the packets read before it."""
        ahead: deque = deque()  # (packet, its time): each time is worked out once
        behind: deque = deque(maxlen=REMEMBERED)
        failure = None
        try:
            while True:
                while failure is None and len(ahead) <= LOOKAHEAD:
                    try:
                        packet = next(demuxed)
                    except StopIteration:
                        failure = StopIteration
                    except Exception as error:  # handed on after the packets before it
                        failure = error
                    else:
                        ahead.append((packet, self.seconds(packet)))
                if not ahead:
                    break
                packet, time = ahead.popleft()
                unshown = self.enabled and self.unshown(time, ahead, behind)
                self.context.skip_frame = "NONREF" if unshown else "DEFAULT"
                self.skipped += unshown
                if time is None:
                    self.enabled = False  # times are guessed from here on: skip nothing
                else:
                    behind.append(time)
                yield packet
        finally:
            self.context.skip_frame = "DEFAULT"
        if failure is not None and failure is not StopIteration:
            raise failure

    def seconds(self, packet) -> float | None:
        return packet_seconds(packet, self.origin)

    def unshown(self, time: float | None, ahead: deque, behind: deque) -> bool:
        if time is None or not behind or min(behind) >= time:
            return False  # unknown time, or possibly the first frame shown
        later = [t for _, t in ahead]
        later = [t for t in (*later, *behind) if t is not None and t > time + EPSILON]
        if not later:
            return False  # maybe the last frame: it is held to the end
        return not self.target_between(time, min(later))

    def target_between(self, low: float, high: float) -> bool:
        """Whether some τ_k (0 <= k < count) satisfies low - ε <= τ_k < high - ε."""
        k = max(0, math.ceil((low - EPSILON - self.start) * self.fps) - 1)
        while k < self.count and self.start + k / self.fps < low - EPSILON:
            k += 1
        return k < self.count and self.start + k / self.fps < high - EPSILON
