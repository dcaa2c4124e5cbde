"""Make print-size pictures through a running service and cut them for bench/RESULTS.md: a thumbnail of the whole
and a crop at 100 %. Progress (stage, iteration, time left) is printed as the job record reports it. Usage,
with a service that accepts the size (RESTYLE_MAX_SIZE=4096, a long enough RESTYLE_JOB_TIME_LIMIT):

    .venv/bin/python bench/highres_pictures.py CONTENT STYLE --size 4096 --iterations 8 [--url http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from PIL import Image

from restyle.client import Client

THUMBNAIL_SIDE = 640
CROP_SIDE = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("content", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with Client(args.url, timeout=120) as client:
        job = client.submit(args.content, args.style, size=args.size, iterations=args.iterations, output_format="png")
        started = time.monotonic()
        while not job.finished:
            time.sleep(5)
            job = client.get(job.id)
            progress = job.progress
            eta = "" if progress.remaining_seconds is None else f", {progress.remaining_seconds:.0f} s left"
            print(
                f"{time.monotonic() - started:6.0f} s  {job.status}: iteration {progress.iteration}/{progress.total}, "
                f"stage {progress.stage}/{progress.stages} at {progress.size} px{eta}",
                flush=True,
            )
        picture = Image.open(io.BytesIO(client.result(job.id))).convert("RGB")
    print(f"{job.status} in {job.run_seconds} s with weights {job.weights}: {picture.size[0]}×{picture.size[1]}")
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"highres_{args.size}"
    thumbnail = picture.copy()
    thumbnail.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    thumbnail.save(args.out / f"{name}_thumbnail.jpg", quality=90)
    left, top = (picture.size[0] - CROP_SIDE) // 2, (picture.size[1] - CROP_SIDE) // 2
    picture.crop((left, top, left + CROP_SIDE, top + CROP_SIDE)).save(args.out / f"{name}_crop_100.png")
    print(f"wrote {args.out / name}_thumbnail.jpg and {name}_crop_100.png")


if __name__ == "__main__":
    main()
