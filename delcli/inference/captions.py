"""Events for people who watch videos: SubRip (`.srt`), WebVTT (`.vtt`) subtitles and
Audacity label tracks.

Subtitles show one cue at a time, so overlapping events are merged: a cue spans a
group of events that overlap, one `label (score)` per line (with each event's own
span when several share the cue).
An Audacity label track (`start<TAB>end<TAB>label`) holds overlapping labels as they
are, so events are written one a line, with the label alone: a track corrected in
Audacity is a label file `del train --labels FOLDER` reads.
"""

from __future__ import annotations

from collections.abc import Sequence

from delcli.inference.video import Event


def caption_cues(events: Sequence[Event]) -> list[tuple[float, float, list[Event]]]:
    """(start, end, events) per cue, in time order: each cue spans a group of events that
    overlap one another (directly or through a chain), listed by descending score."""
    cues: list[tuple[float, float, list[Event]]] = []
    for event in sorted(events, key=lambda e: (e.start, e.end)):
        if cues and event.start < cues[-1][1]:
            start, end, group = cues[-1]
            cues[-1] = (start, max(end, event.end), [*group, event])
        else:
            cues.append((event.start, event.end, [event]))
    return [(s, e, sorted(group, key=lambda x: (-x.score, x.label))) for s, e, group in cues]


def _clock(seconds: float, separator: str) -> str:
    milliseconds = max(0, round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{separator}{millis:03d}"


def _text(events: Sequence[Event]) -> str:
    """One line per event: `label (score)`, and its own span when it shares the cue."""
    if len(events) == 1:
        return f"{events[0].label} ({events[0].score:.2f})"
    return "\n".join(f"{e.label} ({e.score:.2f}) {e.start:.1f}–{e.end:.1f} s" for e in events)


def render_srt(events: Sequence[Event]) -> str:
    """SubRip: numbered cues, `hh:mm:ss,mmm --> hh:mm:ss,mmm`, a blank line after each."""
    blocks = [
        f"{number}\n{_clock(start, ',')} --> {_clock(end, ',')}\n{_text(shown)}\n"
        for number, (start, end, shown) in enumerate(caption_cues(events), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(events: Sequence[Event], title: str = "") -> str:
    """WebVTT: the `WEBVTT` header, then cues `hh:mm:ss.mmm --> hh:mm:ss.mmm`."""
    header = "WEBVTT" + (f" - {title}" if title else "") + "\n"
    blocks = [
        f"{_clock(start, '.')} --> {_clock(end, '.')}\n{_text(shown)}\n"
        for start, end, shown in caption_cues(events)
    ]
    return "\n".join([header, *blocks])


def render_audacity(events: Sequence[Event]) -> str:
    """Audacity's label track: `start<TAB>end<TAB>label` per event, by start."""
    rows = sorted(events, key=lambda e: (e.start, -e.score))
    return "".join(f"{e.start:.6f}\t{e.end:.6f}\t{e.label}\n" for e in rows)
