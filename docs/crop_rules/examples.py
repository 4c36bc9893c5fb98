"""Before/after crops for docs/crop_rules.md: a group photo, a product and a graphic on plain
backgrounds, and a near-16:9 frame, each cropped by two versions of the engine.

    # 1. each engine's boxes (run once per checkout; --layers points at its layers/ folder)
    git worktree add /tmp/before <commit before the rules>
    python docs/crop_rules/examples.py boxes --layers /tmp/before/layers --out /tmp/before.json
    python docs/crop_rules/examples.py boxes --layers layers --out /tmp/after.json
    # 2. the picture
    python docs/crop_rules/examples.py draw /tmp/before.json /tmp/after.json --png docs/img/crop_rules.jpg

The synthetic photos are the known-answer tests' own (tests/engine/test_crop_rules.py); the group
photo is EyeCrowd's 236.jpg (MIT License, ../shared/data/saliency/eyecrowd/SOURCE.md).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[2]
GROUP = ROOT / "../shared/data/saliency/eyecrowd/stimuli_640x480/236.jpg"
RATIOS = {"group": ("9:16", "4:5"), "product": ("1:1", "9:16"), "graphic": ("1:1", "9:16"), "frame": ("16:9",)}
COLOURS = {"1:1": "red", "16:9": "blue", "4:5": "lime", "9:16": "magenta"}


def photos() -> dict[str, bytes]:
    sys.path.insert(0, str(ROOT))
    from tests.synthetic_photos import busy, jpeg, plain, product, squares

    return {
        "group": GROUP.read_bytes(),
        "product": jpeg(product(plain(1200, 900))[0]),
        "graphic": jpeg(squares(plain(1200, 500, colour=(255, 255, 255), noise=1.0))[0]),
        "frame": jpeg(busy(680, 383)),
    }


def boxes(layers: Path, out: Path) -> None:
    sys.path.insert(0, str(layers.resolve()))
    from autocrop.engine import analyse
    from autocrop.options import CropOptions

    found = {}
    for name, data in photos().items():
        result = analyse(data, CropOptions.from_ratios(",".join(RATIOS[name])))
        found[name] = {c.ratio: {"box": c.box.to_list(), "chosen_by": c.chosen_by} for c in result.crops}
    out.write_text(json.dumps(found, indent=1))


def draw(before: Path, after: Path, png: Path) -> None:
    data, sides = photos(), [json.loads(before.read_text()), json.loads(after.read_text())]
    rows = []
    for name, raw in data.items():
        tiles = []
        for side in sides:
            im = Image.open(io.BytesIO(raw)).convert("RGB")
            d = ImageDraw.Draw(im)
            for ratio, crop in side[name].items():
                x, y, w, h = crop["box"]
                d.rectangle([x, y, x + w - 1, y + h - 1], outline=COLOURS[ratio], width=max(3, im.width // 160))
            im.thumbnail((520, 300))
            tiles.append(im)
        row = Image.new("RGB", (sum(t.width for t in tiles) + 20, max(t.height for t in tiles)), "white")
        row.paste(tiles[0], (0, 0))
        row.paste(tiles[1], (tiles[0].width + 20, 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows) + 10 * len(rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + 10
    sheet.save(png, quality=88)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("boxes")
    b.add_argument("--layers", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    d = sub.add_parser("draw")
    d.add_argument("before", type=Path)
    d.add_argument("after", type=Path)
    d.add_argument("--png", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "boxes":
        boxes(args.layers, args.out)
    else:
        draw(args.before, args.after, args.png)


if __name__ == "__main__":
    main()
