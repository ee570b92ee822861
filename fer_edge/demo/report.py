"""What a demo run saw, in words: the end-of-run summary lines. Light tier."""

from __future__ import annotations

from collections import Counter


class FaceTally:
    """Counts, over a run, the frames with a classified face and the shown label of every
    classified face on every frame (a face seen on 30 frames as happy counts 30)."""

    def __init__(self):
        self.frames_with_face = 0
        self.labels: Counter = Counter()
        self.most_faces = 0

    def note(self, tracks, labels: tuple[str, ...]) -> None:
        """Add one frame's visible tracks (those not classified yet are left out)."""
        shown = [t for t in tracks if t.probs is not None and t.label >= 0]
        if shown:
            self.frames_with_face += 1
            self.most_faces = max(self.most_faces, len(shown))
            self.labels.update(labels[t.label] for t in shown)

    def line(self, frames: int, unit: str = "frames") -> str:
        """E.g. "faces: on 60 of 60 frames (at most 1 at once); shown labels (face-frames):
        happy 52, neutral 8"."""
        if not self.frames_with_face:
            return f"faces: none found on {frames} {unit}"
        counts = ", ".join(f"{lab} {n}" for lab, n in self.labels.most_common())
        per = "face-photos" if unit == "photos" else "face-frames"
        return (f"faces: on {self.frames_with_face} of {frames} {unit} (at most "
                f"{self.most_faces} at once); shown labels ({per}): {counts}")


def summary_lines(stats, photos: bool = False, log: str = "") -> list[str]:
    """The end-of-run summary: speed, then what was seen (and skipped / resized; a ``log``
    that got no row, and so was not written)."""
    s = stats.summary()
    unit = "photos" if photos else "frames"
    how = {"": "", "SIGINT": "stopped by Ctrl-C; ", "SIGTERM": "stopped by SIGTERM; "}
    lines = [how.get(stats.stopped_by, f"stopped by {stats.stopped_by}; ") +
             f"{s['frames']} {unit} in {s['seconds']:.1f} s = {s['fps']} FPS; median ms per "
             f"frame: detect {s['detect_ms']}, classify {s['classify_ms']}, draw "
             f"{s['draw_ms']}; dropped {s['dropped']}; peak memory {s['peak_rss_mb']} MB",
             stats.tally.line(s["frames"], unit)]
    if stats.skipped:
        lines.append(f"skipped {stats.skipped} unreadable image(s) (see the warnings above)")
    if log and log != "-" and not stats.rows_logged:
        lines.append(f"--log {log}: no face was classified, so nothing was written (an "
                     "existing file was left as it was)")
    if stats.resized:
        lines.append(f"--save: {stats.resized} frame(s) of another size letterboxed to the "
                     "first frame's size")
    return lines
