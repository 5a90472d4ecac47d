"""Point labels that never overlap: a greedy placement over candidate offsets, measured by the renderer.

Each label tries offsets around its point, nearest first; a candidate is taken when its text box, as the
renderer draws it, stays inside the axes and meets no label placed before it, no marker and no legend.
Labels placed far from their point get a thin leader line. A label that finds no free place is left out
(its number is in the table) rather than drawn over another; the caller learns how many.

Call it last, once the axes' limits, scales and layout are final: boxes are measured in display space.
"""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

# Offsets in points: eight directions at growing distances, nearest first.
_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (0, 1), (-1, 0), (0, -1)]
_RADII = (4, 9, 15, 22, 30)
CANDIDATES = [(dx * r, dy * r) for r in _RADII for dx, dy in _DIRECTIONS]
LEADER_FROM = 12  # points: farther labels get a leader line to their point


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    color: str = "black"


def _overlaps(box: Bbox, others: list[Bbox], pad: float = 1.0) -> bool:
    grown = box.padded(pad)
    return any(grown.overlaps(o) for o in others)


def _inside(box: Bbox, frame: Bbox) -> bool:
    return box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1


def _align(dx: float, dy: float) -> tuple[str, str]:
    """Text alignment that puts the label on the far side of its offset from the point."""
    return ("left" if dx > 0 else "right" if dx < 0 else "center"), ("bottom" if dy > 0 else "top" if dy < 0 else "center")


def _box_at(px: float, py: float, dx: float, dy: float, w: float, h: float, scale: float) -> Bbox:
    """The text box of a w x h label offset by (dx, dy) points from display point (px, py), aligned by _align."""
    x, y = px + dx * scale, py + dy * scale
    x0 = x if dx > 0 else x - w if dx < 0 else x - w / 2
    y0 = y if dy > 0 else y - h if dy < 0 else y - h / 2
    return Bbox.from_bounds(x0, y0, w, h)


def text_box(ann: Annotation, renderer) -> Bbox:
    """The box of a label's text alone (an annotation's own extent includes its leader line)."""
    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


def place_labels(ax: Axes, labels: list[Label], *, fontsize: float = 7, marker_px: float | None = None,
                 obstacles: list[Bbox] | None = None) -> tuple[list[Annotation], int]:
    """Annotate ``ax`` with ``labels`` where they fit; returns the annotations and how many were left out.

    ``marker_px`` is the half-size of the box kept free around every labelled point (default: a 6-point
    marker's); ``obstacles`` are further display-space boxes to avoid (a legend inside the axes is added)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    ax.viewLim  # noqa: B018  (brings autoscaled limits up to date before data are mapped to display)
    frame = ax.get_window_extent(renderer)
    taken = list(obstacles or [])
    legend = ax.get_legend()
    if legend is not None:
        taken.append(legend.get_window_extent(renderer))
    scale = fig.dpi / 72  # display pixels per point
    half = marker_px if marker_px is not None else 4 * scale
    points = [ax.transData.transform((lab.x, lab.y)) for lab in labels]
    taken += [Bbox.from_extents(px - half, py - half, px + half, py + half) for px, py in points]
    placed: list[Annotation] = []
    left_out = 0
    for lab, (px, py) in zip(labels, points):
        probe = ax.annotate(lab.text, (lab.x, lab.y), fontsize=fontsize, annotation_clip=False)
        size = text_box(probe, renderer)  # measured once: every candidate is the same box moved
        probe.remove()
        for dx, dy in CANDIDATES:
            box = _box_at(px, py, dx, dy, size.width, size.height, scale)
            if _inside(box, frame) and not _overlaps(box, taken):
                ha, va = _align(dx, dy)
                far = max(abs(dx), abs(dy)) >= LEADER_FROM  # far from its point: a thin line says whose it is
                ann = ax.annotate(lab.text, (lab.x, lab.y), xytext=(dx, dy), textcoords="offset points", ha=ha,
                                  va=va, fontsize=fontsize, color=lab.color, annotation_clip=False,
                                  arrowprops={"arrowstyle": "-", "lw": 0.5, "color": lab.color, "shrinkA": 1, "shrinkB": 3}
                                  if far else None)
                taken.append(text_box(ann, renderer))
                placed.append(ann)
                break
        else:
            left_out += 1
    return placed, left_out
