"""Stability benchmark: the same study twice from scratch; do the two agree?

    .venv/bin/python benchmarks/stability.py                      # default study, twice
    .venv/bin/python benchmarks/stability.py --configfile config/smoke.yaml

For each (data set, model, stack, threads) it prints both runs' median steady epoch
seconds and their ratio; for every pair of stacks that the first study calls different
(95 % intervals apart), whether the second study orders them the same way. Targets on a
quiet machine (issue 9): no pair flips, at least 90 % of the median ratios within
0.9-1.1, and orchestration overhead under 5 % of wall time. Prints figures; asserts
nothing.
"""
from __future__ import annotations

import argparse
import itertools
import sys

from study import overhead, print_study, run_study

KEY = ["dataset", "model", "threads", "hardware"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=None, help="extra config layered over config/config.yaml")
    a = p.parse_args()
    name = a.configfile or "config/config.yaml"
    studies = []
    for k in (1, 2):
        work, wall = run_study(a.configfile, f"stability{k}")
        studies.append((print_study(work, wall, f"{name}, study {k}"), work, wall))
    first, second = (s[s.status == "ok"].set_index(KEY + ["stack"]) for s, _, _ in studies)
    both = first.merge(second, left_index=True, right_index=True, suffixes=("_1", "_2"))
    both = both.assign(ratio=both.steady_epoch_seconds_median_2 / both.steady_epoch_seconds_median_1)
    print(f"\n{'dataset/model':26} {'stack':17} {'thr':>3} {'median 1 s':>10} {'median 2 s':>10} {'ratio':>6}")
    for (dataset, model, threads, _, stack), r in both.iterrows():
        print(f"{dataset + '/' + model:26} {stack:17} {threads:3} {r.steady_epoch_seconds_median_1:10.3f} "
              f"{r.steady_epoch_seconds_median_2:10.3f} {r.ratio:6.3f}")
    within = ((both.ratio >= 0.9) & (both.ratio <= 1.1)).mean()
    print(f"\nmedian ratios within 0.9-1.1: {100 * within:.0f} % of {len(both)} (target >= 90 %)")

    pairs = flips = 0
    for _, case in both.groupby(level=KEY):
        rows = case.reset_index().to_dict("records")
        for a_, b in itertools.combinations(rows, 2):
            apart = (a_["steady_epoch_seconds_ci_high_1"] < b["steady_epoch_seconds_ci_low_1"]
                     or b["steady_epoch_seconds_ci_high_1"] < a_["steady_epoch_seconds_ci_low_1"])
            if not apart:
                continue
            pairs += 1
            order1 = a_["steady_epoch_seconds_median_1"] < b["steady_epoch_seconds_median_1"]
            order2 = a_["steady_epoch_seconds_median_2"] < b["steady_epoch_seconds_median_2"]
            if order1 != order2:
                flips += 1
                print(f"FLIP {a_['dataset']}/{a_['model']} {a_['threads']} threads: {a_['stack']} vs {b['stack']}")
    print(f"pairs the first study calls different: {pairs}; ordered otherwise by the second: {flips} (target 0)")
    for k, (_, work, wall) in enumerate(studies, 1):
        stacks_s, over = overhead(work, wall)
        print(f"study {k}: wall {wall:.0f} s, overhead {over:.1f} s = {100 * over / wall:.1f} % (target < 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
