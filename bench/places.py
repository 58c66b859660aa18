"""Places: index load time and lookups/s against a bare scipy k-d tree query, same points, same run.

    .venv/bin/python bench/places.py [--points 100000] [--rounds 3] [--seed 0]

Prints the time to load the index (read and check the packaged data, parse it, build the tree)
and the process's peak RSS after it (the parsed JSON is the peak; the index keeps less),
then for --points random positions (uniform on the sphere, so most are at sea) and for as many
positions near populated places (a known place moved up to ~20 km):
  * baseline: `cKDTree.query(xyz, k=1)` on the index's own tree (the nearest point, no names);
  * `PlaceIndex.lookup_many`: k nearest, the region and reach rules, Place objects;
  * `place_for` one position at a time (what the metadata stage does per photo), on 1/10 of them.
Times are the best of --rounds; ratios are against the baseline of the same points.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from photodb.places import geocoder  # noqa: E402


def best_of(rounds: int, call: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    index = geocoder.load_packaged_index()
    load_s = time.perf_counter() - start
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"index: {len(index)} places from {index.source}, loaded in {load_s:.2f} s, "
        f"peak RSS {rss_mib:.0f} MiB (load1 {os.getloadavg()[0]:.1f})"
    )

    rng = np.random.default_rng(args.seed)
    n = args.points
    sphere_lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    sphere_lon = rng.uniform(-180, 180, n)
    picked = rng.integers(0, len(index), n)
    xyz = index.tree.data[picked] + rng.normal(0, 20 / geocoder.EARTH_RADIUS_KM / 1.7, (n, 3))
    xyz /= np.linalg.norm(xyz, axis=1, keepdims=True)
    near_lat, near_lon = np.degrees(np.arcsin(xyz[:, 2])), np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0]))

    print(f"{'points':<22}{'baseline kd k=1':>18}{'lookup_many':>16}{'ratio':>8}{'place_for':>14}{'ratio':>8}")
    for label, lat, lon in (("uniform on the sphere", sphere_lat, sphere_lon), ("near places", near_lat, near_lon)):
        points = geocoder._unit_xyz(lat, lon)
        baseline = best_of(args.rounds, lambda points=points: index.tree.query(points, k=1))
        batched = best_of(args.rounds, lambda lat=lat, lon=lon: index.lookup_many(lat, lon))
        few = max(1, n // 10)
        pairs = [(float(a), float(b)) for a, b in zip(lat[:few], lon[:few], strict=True)]
        single = best_of(args.rounds, lambda pairs=pairs: [index.lookup(a, b) for a, b in pairs]) * (n / few)
        named = sum(p.city is not None for p in index.lookup_many(lat, lon))
        print(
            f"{label:<22}{n / baseline:>14,.0f}/s {n / batched:>12,.0f}/s {batched / baseline:>7.1f}x"
            f"{n / single:>11,.0f}/s {single / baseline:>7.1f}x   ({named / n:.0%} named a city)"
        )


if __name__ == "__main__":
    main()
