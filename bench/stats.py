#!/usr/bin/python3
"""Summarizes raw benchmark lines into medians (bench/run.sh writes and reads these files).

Raw file: one run per line, `CONDITION<TAB>RUN<TAB>key=value key=value ...`; lines starting
with # are comments. Prints TSV: condition, key, median, min, max, runs (keys in first-seen
order). Standard library only.
"""
import statistics
import sys


def main(path):
    values = {}  # (condition, key) -> [float]
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        condition, _run, pairs = line.rstrip('\n').split('\t', 2)
        for pair in pairs.split():
            key, _, value = pair.partition('=')
            try:
                values.setdefault((condition, key), []).append(float(value))
            except ValueError:
                pass
    print('condition\tkey\tmedian\tmin\tmax\truns')
    for (condition, key), v in values.items():
        print(f'{condition}\t{key}\t{statistics.median(v):.6g}\t{min(v):.6g}\t{max(v):.6g}\t{len(v)}')


if __name__ == '__main__':
    main(sys.argv[1])
