"""Figure 4 drawn: for each image (the i-th to arrive at each stage), when it reached the
sending agent, the relay and the receiving PACS, in seconds since the first arrival. Pillow
only (already a dependency through qrcode[pil])."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 1000, 600
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 60
SERIES = (
    ("reached the sending agent", (31, 119, 180)),
    ("sealed object complete at the relay", (255, 127, 14)),
    ("stored in the receiving PACS", (44, 160, 44)),
)


def draw(path: Path, title: str, stages: list[list[float]]) -> None:
    """`stages`: Unix times per stage, each list sorted (arrived, at relay, stored)."""
    origin = min(min(s) for s in stages if s)
    end = max(max(s) for s in stages if s) - origin
    count = max(len(s) for s in stages)
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    pen = ImageDraw.Draw(image)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = end or 1.0

    def xy(seconds: float, rank: int) -> tuple[float, float]:
        return (LEFT + seconds / span * plot_w, TOP + plot_h - rank / max(count - 1, 1) * plot_h)

    pen.rectangle((LEFT, TOP, LEFT + plot_w, TOP + plot_h), outline="black")
    for tick in range(6):
        seconds = span * tick / 5
        x = LEFT + plot_w * tick / 5
        pen.line((x, TOP + plot_h, x, TOP + plot_h + 5), fill="black")
        pen.text((x - 12, TOP + plot_h + 8), f"{seconds:.1f}s", fill="black")
        rank = round((count - 1) * tick / 5)
        y = TOP + plot_h - plot_h * tick / 5
        pen.line((LEFT - 5, y, LEFT, y), fill="black")
        pen.text((10, y - 6), str(rank + 1), fill="black")
    pen.text((LEFT, 10), title, fill="black")
    pen.text(
        (LEFT + plot_w / 2 - 80, HEIGHT - 25), "seconds since the first image arrived", fill="black"
    )
    pen.text((10, TOP - 20), "image", fill="black")
    for (_label, colour), times in zip(SERIES, stages, strict=True):
        for rank, t in enumerate(times):
            x, y = xy(t - origin, rank)
            pen.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
    for i, (label, colour) in enumerate(SERIES):
        y = TOP + 10 + i * 16
        pen.rectangle((LEFT + 10, y, LEFT + 20, y + 10), fill=colour)
        pen.text((LEFT + 26, y - 1), label, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
