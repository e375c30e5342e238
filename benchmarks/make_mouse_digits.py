"""Make benchmarks/mouse_digits.json: digits as a class writes them with a mouse on the
explorer's pad, stroke by stroke (run once; the file is what tests and benchmarks replay).

    python benchmarks/make_mouse_digits.py          # writes benchmarks/mouse_digits.json

Nobody outside the project drew these: each digit is one of a few ways people write it (an
open or a closed 4, a 1 with or without its flag, a 7 with or without its bar...), written as
the strokes a hand makes, in order, then drawn as a mouse would: somewhere on the pad, larger or
smaller, slanted or turned a little, wobbly, sampled as pointer events come (a point every 1-2%
of the pad). Points are in pad units, 0..1 across and down, as the pad keeps them
(explorer/page/draw.js), so replaying them gives the pad's own drawing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "mouse_digits.json"
DRAWINGS_PER_STYLE = 6
SEED = 2026

# Each style: strokes, each a list of control points (x, y) in pad units that a smooth curve
# passes through, in the order a hand moves.
STYLES: dict[int, list[list[list[tuple[float, float]]]]] = {
    0: [
        [
            [
                (0.5, 0.18),
                (0.3, 0.3),
                (0.27, 0.55),
                (0.38, 0.78),
                (0.58, 0.8),
                (0.7, 0.6),
                (0.7, 0.35),
                (0.55, 0.18),
                (0.48, 0.2),
            ]
        ],
        [
            [
                (0.55, 0.2),
                (0.36, 0.28),
                (0.32, 0.5),
                (0.4, 0.75),
                (0.6, 0.78),
                (0.66, 0.5),
                (0.6, 0.25),
                (0.5, 0.2),
            ]
        ],
    ],
    1: [
        [[(0.5, 0.18), (0.5, 0.5), (0.5, 0.82)]],
        [[(0.36, 0.32), (0.52, 0.18), (0.52, 0.5), (0.52, 0.82)]],
        [[(0.38, 0.3), (0.52, 0.18), (0.52, 0.82)], [(0.38, 0.82), (0.66, 0.82)]],
    ],
    2: [
        [
            [
                (0.3, 0.32),
                (0.45, 0.19),
                (0.65, 0.24),
                (0.66, 0.42),
                (0.45, 0.62),
                (0.3, 0.8),
                (0.5, 0.8),
                (0.72, 0.79),
            ]
        ],
        [[(0.32, 0.3), (0.5, 0.18), (0.68, 0.3), (0.6, 0.5), (0.3, 0.8), (0.72, 0.8)]],
    ],
    3: [
        [
            [
                (0.32, 0.25),
                (0.5, 0.18),
                (0.66, 0.27),
                (0.6, 0.43),
                (0.46, 0.48),
                (0.64, 0.56),
                (0.68, 0.7),
                (0.52, 0.81),
                (0.3, 0.76),
            ]
        ],
        [[(0.3, 0.22), (0.68, 0.2), (0.48, 0.46), (0.68, 0.6), (0.6, 0.8), (0.32, 0.8)]],
    ],
    4: [
        [[(0.62, 0.84), (0.62, 0.5), (0.62, 0.18), (0.28, 0.62), (0.5, 0.62), (0.76, 0.62)]],
        [[(0.34, 0.18), (0.31, 0.56), (0.72, 0.56)], [(0.63, 0.2), (0.63, 0.5), (0.63, 0.86)]],
    ],
    5: [
        [
            [
                (0.68, 0.19),
                (0.36, 0.2),
                (0.33, 0.46),
                (0.56, 0.42),
                (0.7, 0.58),
                (0.62, 0.78),
                (0.44, 0.82),
                (0.3, 0.75),
            ]
        ],
        [
            [(0.36, 0.2), (0.33, 0.46), (0.58, 0.42), (0.7, 0.6), (0.6, 0.8), (0.3, 0.77)],
            [(0.36, 0.2), (0.7, 0.2)],
        ],
    ],
    6: [
        [
            [
                (0.64, 0.18),
                (0.44, 0.32),
                (0.33, 0.55),
                (0.37, 0.76),
                (0.52, 0.82),
                (0.67, 0.7),
                (0.62, 0.54),
                (0.46, 0.52),
                (0.35, 0.62),
            ]
        ],
        [
            [
                (0.6, 0.18),
                (0.38, 0.45),
                (0.35, 0.7),
                (0.5, 0.82),
                (0.66, 0.68),
                (0.5, 0.54),
                (0.36, 0.62),
            ]
        ],
    ],
    7: [
        [[(0.3, 0.2), (0.72, 0.2), (0.56, 0.48), (0.45, 0.82)]],
        [[(0.3, 0.22), (0.72, 0.2), (0.48, 0.82)], [(0.4, 0.5), (0.66, 0.5)]],
    ],
    8: [
        [
            [
                (0.6, 0.25),
                (0.48, 0.18),
                (0.34, 0.27),
                (0.4, 0.42),
                (0.6, 0.55),
                (0.66, 0.72),
                (0.5, 0.82),
                (0.34, 0.72),
                (0.4, 0.55),
                (0.6, 0.42),
                (0.64, 0.27),
                (0.56, 0.2),
            ]
        ],
        [
            [
                (0.5, 0.48),
                (0.36, 0.35),
                (0.5, 0.18),
                (0.64, 0.35),
                (0.5, 0.48),
                (0.34, 0.65),
                (0.5, 0.82),
                (0.66, 0.65),
                (0.5, 0.48),
            ]
        ],
    ],
    9: [
        [
            [
                (0.64, 0.3),
                (0.5, 0.2),
                (0.35, 0.3),
                (0.38, 0.46),
                (0.55, 0.48),
                (0.64, 0.32),
                (0.63, 0.55),
                (0.6, 0.82),
            ]
        ],
        [
            [(0.62, 0.25), (0.45, 0.19), (0.34, 0.34), (0.48, 0.48), (0.64, 0.36)],
            [(0.64, 0.22), (0.63, 0.52), (0.6, 0.84)],
        ],
    ],
}


def smooth(points: list[tuple[float, float]], spacing: float) -> np.ndarray:
    """A Catmull-Rom curve through ``points``, sampled about every ``spacing`` pad units."""
    p = np.array(points, float)
    p = np.vstack([p[0], p, p[-1]])  # the curve starts and ends at the first and last points
    curve = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        steps = max(2, int(np.linalg.norm(p2 - p1) / spacing))
        for t in np.linspace(0, 1, steps, endpoint=False):
            t2, t3 = t * t, t * t * t
            curve.append(
                0.5
                * (
                    2 * p1
                    + (-p0 + p2) * t
                    + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                    + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
                )
            )
    curve.append(p[-2])
    return np.array(curve)


def as_a_mouse_draws(strokes, rng: np.random.Generator) -> list[list[list[float]]]:
    """The style's strokes written somewhere on the pad, by an unsteady hand."""
    size = rng.uniform(0.55, 1.05)
    angle = np.radians(rng.uniform(-10, 10))
    slant = rng.uniform(-0.3, 0.3)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shape = turn @ np.array([[1, -slant], [0, 1]]) * size  # slant moves the top sideways
    drawn = [smooth(stroke, rng.uniform(0.01, 0.02)) for stroke in strokes]
    every = np.vstack(drawn)
    centre = (every.max(axis=0) + every.min(axis=0)) / 2
    placed = [(stroke - centre) @ shape.T for stroke in drawn]
    every = np.vstack(placed)
    low, high = every.min(axis=0), every.max(axis=0)
    room_low, room_high = 0.06 - low, 0.94 - high  # where the centre may go, staying on the pad
    offset = rng.uniform(np.minimum(room_low, room_high), np.maximum(room_low, room_high))
    result = []
    for stroke in placed:
        wobble = np.cumsum(rng.normal(0, 0.002, stroke.shape), axis=0)  # a hand drifts
        points = np.clip(stroke + offset + wobble, 0, 1)
        result.append([[round(float(x), 4), round(float(y), 4)] for x, y in points])
    return result


def main() -> int:
    rng = np.random.default_rng(SEED)
    drawings = []
    for digit, styles in STYLES.items():
        for style, strokes in enumerate(styles):
            for _ in range(DRAWINGS_PER_STYLE):
                drawings.append(
                    {
                        "label": digit,
                        "style": f"{digit}{'abc'[style]}",
                        "strokes": as_a_mouse_draws(strokes, rng),
                    }
                )
    OUTPUT.write_text(json.dumps({"drawings": drawings}, separators=(",", ":")) + "\n")
    print(f"wrote {len(drawings)} drawings to {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
