"""Seeded procedural referring-expression data: coloured shapes on textured backgrounds.

Two tasks share one image style. **Grounding**: "Where is the small red circle?" -> the box of the one
shape with that size, colour and kind, as four integers ``"x1 y1 x2 y2"``. **Counting**: "How many
blue squares?" -> a word, ``"zero"`` .. ``"four"``.

Images are ``IMAGE_SIZE`` = 100 px square, so a box quantised to 0-99 *is* its pixel box (x2, y2
exclusive): the dataset's ``box`` field (pixels, the format the study tooling scores) and the model's
answer text are the same numbers. Every sample is a pure function of ``(seed, split, index)``, so
training streams samples without storing them and the written splits never overlap.

    python -m tokcompress_grounding.data --out DIR [--seed 0] [--train 0 --val 500 --test 1000]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SIZE",
    "GRID",
    "cell_edge",
    "MAX_OBJECTS",
    "COLOURS",
    "SHAPES",
    "PLURALS",
    "SIZES",
    "COUNT_WORDS",
    "SPLITS",
    "TASKS",
    "Shape",
    "Scene",
    "GroundingSample",
    "Question",
    "make_sample",
    "make_group",
    "referable",
    "counts_by_value",
    "grounding_question",
    "counting_question",
    "render",
    "format_box",
    "write_split",
]

IMAGE_SIZE = 100
"""Image side in pixels; also the number of quantisation levels of a box coordinate (0-99)."""
GRID = 16
"""Shapes are placed on a GRID x GRID lattice of cells, the model's patch grid: every box edge lies on a
cell boundary (pixel ``cell_edge(k)``), so which patches a shape covers determines its box exactly."""

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (40, 75, 225),
    "yellow": (235, 215, 35),
    "purple": (145, 50, 195),
    "white": (250, 250, 250),
}
"""Saturated object colours; backgrounds are muted, so every colour stands out from them."""

SHAPES = ("circle", "square", "triangle", "cross")
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses"}
SIZES: dict[str, tuple[int, int]] = {"small": (2, 2), "large": (3, 4)}
"""Side of the (square) bounding box in cells, inclusive range per size word: small shapes are 2x2 cells
(12-13 px), large ones 3x3 or 4x4 (18-25 px)."""

COUNT_WORDS = ("zero", "one", "two", "three", "four")
SPLITS = {"train": 0, "val": 1, "test": 2}
"""Split name -> stream id mixed into the seed, so the splits are disjoint streams."""
TASKS = ("grounding", "counting")

MAX_OBJECTS = 8
"""Most shapes in one scene (test scenes have 3 to 8)."""
_P_SMALL = 0.6
_P_MAIN = 0.5
_P_NEAR_MISS = 0.6
"""Share of the other shapes drawn as near misses of the main type (same colour or same kind)."""
_GAP = 1
"""Minimum number of empty cells between two shapes."""
_COLOUR_JITTER = 14
_PLACEMENT_TRIES = 300


@dataclass(frozen=True)
class Shape:
    """One drawn object: its attributes and its pixel box ``(x1, y1, x2, y2)``, x2/y2 exclusive."""

    kind: str
    colour: str
    size: str
    box: tuple[int, int, int, int]

    @property
    def attributes(self) -> tuple[str, str, str]:
        return (self.size, self.colour, self.kind)


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]
    background: str
    main: tuple[str, str]
    """The (colour, kind) the scene repeats 1-4 times; counting questions ask for it most often."""


@dataclass(frozen=True)
class GroundingSample:
    """One question on one generated image. `box` is set for grounding, None for counting."""

    id: str
    task: str
    image: "object"  # PIL.Image.Image (kept untyped so importing this module does not import PIL)
    prompt: str
    answer: str
    box: tuple[int, int, int, int] | None
    scene: Scene


def format_box(box: tuple[int, int, int, int]) -> str:
    """The answer text of a box: four integers 0-99 separated by single spaces."""
    return " ".join(str(int(v)) for v in box)


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split], int(index)]))


def cell_edge(k: int) -> int:
    """Pixel coordinate of cell boundary `k` (0 .. GRID): ``k * IMAGE_SIZE / GRID`` rounded half up."""
    return (2 * k * IMAGE_SIZE + GRID) // (2 * GRID)


def _place(rng: np.random.Generator, sides: list[int]):
    """Cell boxes ``(c1, r1, c2, r2)`` (exclusive ends) for squares of the given sides in cells, at least
    `_GAP` empty cells apart, inside cells 0 .. GRID-2 so that x2 <= 99; None if they do not fit."""
    boxes: list[tuple[int, int, int, int]] = []
    for side in sides:
        for _ in range(_PLACEMENT_TRIES):
            c, r = (int(v) for v in rng.integers(0, GRID - side, size=2))
            box = (c, r, c + side, r + side)
            if all(_apart(box, other) for other in boxes):
                boxes.append(box)
                break
        else:
            return None
    return boxes


def _apart(a, b) -> bool:
    return a[2] + _GAP <= b[0] or b[2] + _GAP <= a[0] or a[3] + _GAP <= b[1] or b[3] + _GAP <= a[1]


def _pixel_box(cells: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return tuple(cell_edge(k) for k in cells)  # type: ignore[return-value]


def _side(rng: np.random.Generator, size: str) -> int:
    lo, hi = SIZES[size]
    return int(rng.integers(lo, hi + 1))


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _near_miss(rng: np.random.Generator, colour: str, kind: str) -> tuple[str, str]:
    """A (colour, kind) differing from the given one in exactly one of the two."""
    if rng.random() < 0.5:
        return _pick(rng, [c for c in COLOURS if c != colour]), kind
    return colour, _pick(rng, [k for k in SHAPES if k != kind])


def _size_word(rng: np.random.Generator) -> str:
    return "small" if rng.random() < _P_SMALL else "large"


def _scene(rng: np.random.Generator) -> Scene:
    """A scene with a repeated main type (1-4 copies) among near-miss and random distractors.

    Repeats make counts up to four common; near misses (same colour or same kind as the main type)
    make both questions need every attribute. Layouts that do not fit are redrawn from the stream.
    """
    while True:
        colour, kind = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
        copies = int(rng.integers(1, len(COUNT_WORDS)))
        others = int(rng.integers(2, MAX_OBJECTS - copies + 1))
        attrs = [(_size_word(rng), colour, kind) for _ in range(copies)]
        for _ in range(others):
            c, k = _near_miss(rng, colour, kind) if rng.random() < _P_NEAR_MISS else (_pick(rng, list(COLOURS)), _pick(rng, SHAPES))
            attrs.append((_size_word(rng), c, k))
        attrs = [attrs[i] for i in rng.permutation(len(attrs))]
        boxes = _place(rng, [_side(rng, a[0]) for a in attrs])
        if boxes is None:
            continue
        shapes = tuple(Shape(a[2], a[1], a[0], _pixel_box(b)) for a, b in zip(attrs, boxes))
        scene = Scene(shapes, _pick(rng, _BACKGROUNDS), (colour, kind))
        if referable(scene):
            return scene


def referable(scene: Scene) -> list[Shape]:
    """Shapes whose (size, colour, kind) is unique in the scene: the ones a grounding question can ask for."""
    triples = [s.attributes for s in scene.shapes]
    return [s for s in scene.shapes if triples.count(s.attributes) == 1]


def counts_by_value(scene: Scene) -> dict[int, list[tuple[str, str]]]:
    """Count -> every (colour, kind) with that many shapes in the scene, for counts 0 .. 4, in a fixed order."""
    out: dict[int, list[tuple[str, str]]] = {}
    for colour in COLOURS:
        for kind in SHAPES:
            n = sum(1 for s in scene.shapes if (s.colour, s.kind) == (colour, kind))
            if n < len(COUNT_WORDS):
                out.setdefault(n, []).append((colour, kind))
    return dict(sorted(out.items()))


@dataclass(frozen=True)
class Question:
    task: str
    prompt: str
    answer: str
    box: tuple[int, int, int, int] | None
    about: tuple[Shape, ...] = ()
    """The shapes the question is about: the target of a grounding question, every shape of the asked
    colour and kind for a counting question (none for a count of zero)."""


def grounding_question(shape: Shape) -> Question:
    return Question("grounding", f"Where is the {shape.size} {shape.colour} {shape.kind}?", format_box(shape.box), shape.box,
                    (shape,))


def counting_question(scene: Scene, colour: str, kind: str) -> Question:
    about = tuple(s for s in scene.shapes if (s.colour, s.kind) == (colour, kind))
    return Question("counting", f"How many {colour} {PLURALS[kind]}?", COUNT_WORDS[len(about)], None, about)


def _grounding_questions(rng: np.random.Generator, scene: Scene, n: int) -> list[Question]:
    """`n` grounding questions: distinct targets while they last, then repeats, uniformly chosen."""
    pool = referable(scene)
    order = list(rng.permutation(len(pool)))
    while len(order) < n:
        order += list(rng.permutation(len(pool)))
    return [grounding_question(pool[i]) for i in order[:n]]


def _counting_questions(rng: np.random.Generator, scene: Scene, n: int) -> list[Question]:
    """`n` counting questions on distinct types while they last.

    Each asks for the scene's main type with probability ``_P_MAIN`` (its count is uniform over
    1-4); otherwise its answer is uniform over the counts the scene offers (0 always among them),
    then a type with that count. Without the main-type share, counts of 3 and 4 would be rare.
    """
    by_count = counts_by_value(scene)
    main_count = sum(1 for s in scene.shapes if (s.colour, s.kind) == scene.main)
    asked: set[tuple[str, str]] = set()
    out = []
    for _ in range(n):
        if rng.random() < _P_MAIN and scene.main not in asked and main_count < len(COUNT_WORDS):
            pair = scene.main
        else:
            fresh = {c: [p for p in pairs if p not in asked] for c, pairs in by_count.items()}
            fresh = {c: pairs for c, pairs in fresh.items() if pairs} or by_count
            count = list(fresh)[int(rng.integers(len(fresh)))]
            pair = fresh[count][int(rng.integers(len(fresh[count])))]
        asked.add(pair)
        out.append(counting_question(scene, *pair))
    return out


def make_group(seed: int, split: str, index: int, n_grounding: int, n_counting: int):
    """Image `index` of `split` with several questions on it: ``(image, scene, [Question])``.

    The image and scene are those of ``make_sample(seed, split, index)``; training packs a group into one sequence (see `train.encode_groups`), so the image is
    encoded once for all its questions.
    """
    rng = _rng(seed, split, index)
    scene = _scene(rng)
    image = render(scene, rng)
    questions = _grounding_questions(rng, scene, n_grounding) + _counting_questions(rng, scene, n_counting)
    return image, scene, questions


def make_sample(seed: int, split: str, index: int, task: str | None = None) -> GroundingSample:
    """Sample `index` of `split`: one question on image `index`, a pure function of the arguments.

    task: "grounding", "counting", or None to alternate (even index grounding, odd counting).
    """
    if task is None:
        task = TASKS[index % 2]
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)} or None, got {task!r}")
    image, scene, (q,) = make_group(seed, split, index, int(task == "grounding"), int(task == "counting"))
    return GroundingSample(f"{split}-{index:06d}", task, image, q.prompt, q.answer, q.box, scene)


# -- rendering ----------------------------------------------------------------------------------------

_BACKGROUNDS = ("blotches", "stripes", "checker", "rings")


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A greyish colour: a random hue pulled most of the way to a mid grey."""
    grey = rng.uniform(95, 175)
    hue = rng.uniform(0, 255, size=3)
    mix = rng.uniform(0.12, 0.3)
    return (1 - mix) * grey + mix * hue


def _texture(scene_background: str, rng: np.random.Generator) -> np.ndarray:
    """``[S, S, 3]`` float background with a low-contrast texture of the named kind."""
    s = IMAGE_SIZE
    a, b = _muted(rng), _muted(rng)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    if scene_background == "blotches":  # smooth noise: a coarse random grid upsampled bilinearly
        cells = int(rng.integers(3, 8))
        grid = rng.uniform(0, 1, size=(cells + 1, cells + 1))
        gx, gy = xx / (s - 1) * cells, yy / (s - 1) * cells
        x0, y0 = np.minimum(gx.astype(int), cells - 1), np.minimum(gy.astype(int), cells - 1)
        fx, fy = gx - x0, gy - y0
        t = (
            grid[y0, x0] * (1 - fx) * (1 - fy)
            + grid[y0, x0 + 1] * fx * (1 - fy)
            + grid[y0 + 1, x0] * (1 - fx) * fy
            + grid[y0 + 1, x0 + 1] * fx * fy
        )
    elif scene_background == "stripes":
        angle, period = rng.uniform(0, np.pi), rng.uniform(5, 16)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif scene_background == "checker":
        cell = int(rng.integers(4, 13))
        t = ((xx // cell + yy // cell) % 2).astype(np.float64)
    else:  # rings around a random centre
        cx, cy, period = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(6, 18)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(xx - cx, yy - cy) / period)
    contrast = rng.uniform(0.35, 0.8)
    t = 0.5 + contrast * (t - 0.5)
    return a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]


def _shape_mask(kind: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean ``[S, S]`` mask whose tight pixel box is exactly `box` (x2, y2 exclusive)."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1  # cell rounding can make them differ by a pixel
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    u, v = xx - x1, yy - y1  # local pixel coordinates, 0 .. w-1 / h-1 inside the box
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    if kind == "square":
        m = inside
    elif kind == "circle":
        m = inside & (((u - cx) / (cx + 0.5)) ** 2 + ((v - cy) / (cy + 0.5)) ** 2 <= 1.0)
    elif kind == "triangle":  # apex on the top row, base spanning the bottom row
        m = inside & (np.abs(u - cx) <= cx * v / max(h - 1, 1) + 0.5)
    elif kind == "cross":
        bar_x, bar_y = max(2, w // 3), max(2, h // 3)
        lo_x, lo_y = (w - bar_x) // 2, (h - bar_y) // 2
        m = inside & (((u >= lo_x) & (u < lo_x + bar_x)) | ((v >= lo_y) & (v < lo_y + bar_y)))
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {list(SHAPES)}")
    return m


def render(scene: Scene, rng: np.random.Generator):
    """The scene as a 100x100 RGB PIL image (textured background, flat jittered shape colours)."""
    from PIL import Image

    img = _texture(scene.background, rng)
    for shape in scene.shapes:
        colour = np.clip(np.array(COLOURS[shape.colour]) + rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, 3), 0, 255)
        img[_shape_mask(shape.kind, shape.box)] = colour
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


# -- writing splits ---------------------------------------------------------------------------------


def write_split(out_dir: Path, split: str, count: int, seed: int = 0, start: int = 0) -> Path:
    """Write samples ``start .. start+count-1`` of `split` as ``out_dir/split.jsonl`` + ``out_dir/split/*.png``.

    Each line has the study dataset fields (``id``, ``image`` relative to the JSONL's folder,
    ``prompt``, and ``answer`` for counting or ``box`` in pixels for grounding) plus ``meta``
    with the task, the target answer text and the generator seed.
    """
    out_dir = Path(out_dir)
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{split}.jsonl"
    with path.open("w") as fh:
        for index in range(start, start + count):
            s = make_sample(seed, split, index)
            rel = f"{split}/{s.id}.png"
            s.image.save(out_dir / rel, optimize=True)
            rec: dict = {"id": s.id, "image": rel, "prompt": s.prompt}
            if s.box is not None:
                rec["box"] = [float(v) for v in s.box]
            else:
                rec["answer"] = s.answer
            rec["meta"] = {"task": s.task, "target": s.answer, "seed": seed, "index": index}
            fh.write(json.dumps(rec) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokcompress_grounding.data", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=0, help="train samples to write (training streams them instead)")
    parser.add_argument("--val", type=int, default=500)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args(argv)
    for split in ("train", "val", "test"):
        n = getattr(args, split)
        if n < 0:
            parser.error(f"--{split} must be >= 0, got {n}")
        if n:
            print(write_split(args.out, split, n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
