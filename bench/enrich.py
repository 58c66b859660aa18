"""enrich-photos' client side: request building vs. a bare Pillow loop, and batch submission to a local server.

    .venv/bin/python bench/enrich.py                       # 1,000 photos at --parallel 1 and 2; 10,000 requests
    .venv/bin/python bench/enrich.py --photos 100 --requests 2000   # quick run

Request building: the normalized PNG (2048 x 1536, as process-local leaves it) downscaled to the
Anthropic limits, encoded (JPEG, or PNG for few colours), base64, and the whole request assembled
and serialized as it is sent. Baseline: open + convert + the same Lanczos resize + JPEG q85 +
base64 of the same files. Submission: `--requests` small requests through the real anthropic SDK
to tests/enrich/anthropic_server.py in batches of BATCH_SIZE, as the runner does. Each row runs in
its own process, so peak RSS is that row's.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, cache_dir, peak_rss_mib

sys.path.insert(0, str(ROOT))

from PIL import Image
from pydantic import SecretStr

from photodb.config import Settings
from photodb.enrich.anthropic_provider import AnthropicProvider, static_params, user_message
from photodb.enrich.request import (
    ANTHROPIC_IMAGE_LIMITS,
    AnalysisRequest,
    EncodedImage,
    PhotoContext,
    encode_image,
    target_size,
)

DISTINCT = 20  # distinct normalized PNGs, cycled


def sources() -> list[Path]:
    from tests.imaging import gradient

    folder = cache_dir() / "enrich-normalized"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"photo_{i:02d}.png" for i in range(DISTINCT)]
    for index, path in enumerate(paths):
        if not path.exists():
            gradient(2048, 1536, seed=index).save(path, compress_level=1)
    return paths


def baseline(path: Path) -> int:
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    image = image.resize(target_size(*image.size, ANTHROPIC_IMAGE_LIMITS), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return len(base64.b64encode(buffer.getvalue()))


def ours(path: Path, static: dict, context: PhotoContext) -> int:
    request = AnalysisRequest(1, encode_image(path, ANTHROPIC_IMAGE_LIMITS), context)
    return len(json.dumps({"custom_id": request.custom_id, "params": {**static, "messages": [user_message(request)]}}))


def build_row(kind: str, photos: int, parallel: int) -> dict:
    paths = sources()
    files = [paths[i % len(paths)] for i in range(photos)]
    static = static_params("claude-sonnet-5-5", 2048)
    context = PhotoContext(camera="Canon EOS R6", people_count=2, person_names=("Anna",), scene_tags=("beach",))
    work = baseline if kind == "bare Pillow" else (lambda p: ours(p, static, context))
    cpu0, started = time.process_time(), time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        sizes = list(pool.map(work, files))
    wall = time.perf_counter() - started
    return {"row": f"{kind}, --parallel {parallel}", "photos/s": photos / wall, "cpu ms/photo":
            (time.process_time() - cpu0) * 1000 / photos, "peak MiB": peak_rss_mib(),
            "KiB/request": sum(sizes) / len(sizes) / 1024}  # fmt: skip


_SERVER = """
import sys
from tests.enrich.anthropic_server import running
with running() as server:
    server.keep_params = False
    print(server.url, flush=True)
    sys.stdin.read()
"""


def submit_row(requests: int, batch_size: int) -> dict:
    """The server runs in its own process: only the client's memory is measured."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 192), "gray").save(buffer, "JPEG")
    image = EncodedImage("image/jpeg", base64.b64encode(buffer.getvalue()).decode() * 8, 256, 192)  # ~10 KiB
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    with subprocess.Popen([sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env) as server:  # fmt: skip
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        settings = Settings(_env_file=None, anthropic_api_key=SecretStr("sk-bench"), anthropic_base_url=url)  # type: ignore[call-arg]
        provider = AnthropicProvider(settings)
        started = time.perf_counter()
        for first in range(0, requests, batch_size):
            count = min(batch_size, requests - first)
            provider.submit_batch(AnalysisRequest(first + i, image, PhotoContext()) for i in range(count))
        wall = time.perf_counter() - started
        server.stdin.close()
    return {"row": f"submit {requests} requests, BATCH_SIZE {batch_size}", "requests/s": requests / wall,
            "wall s": wall, "peak MiB": peak_rss_mib()}  # fmt: skip


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        row = (
            submit_row(int(rest[0]), int(rest[1])) if kind == "submit" else build_row(kind, int(rest[0]), int(rest[1]))
        )
        print(json.dumps(row))
        return
    sources()
    rows = []
    for parallel in (1, 2):
        base = run_child("bare Pillow", str(args.photos), str(parallel))
        mine = run_child("photodb", str(args.photos), str(parallel))
        mine["wall vs bare"] = base["photos/s"] / mine["photos/s"]
        mine["cpu vs bare"] = mine["cpu ms/photo"] / base["cpu ms/photo"]
        rows += [base, mine]
    for batch_size in (1000, args.requests):
        rows.append(run_child("submit", str(args.requests), str(batch_size)))
    for row in rows:
        print("  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(f"load1={os.getloadavg()[0]:.2f} (2 cores shared: wall figures are pessimistic when it is high)")


if __name__ == "__main__":
    main()
