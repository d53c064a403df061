"""The yardstick of ``bench_validate.py``: a process that only parses the repository's YAML.

Run:  .venv/bin/python bench/bare_parse.py ROOT

Reads every ``.yaml`` file under ROOT/content and ROOT/schedules (the files ``diplobot
validate`` reads) and hands each to ``yaml.load(..., Loader=yaml.CSafeLoader)``: libyaml's C
parser composing in C, nothing checked. It imports only PyYAML, so its start-up is Python's
plus PyYAML's. Prints the number of files parsed.
"""

from __future__ import annotations

import os
import sys

import yaml


def yaml_files(root: str) -> list[str]:
    """The ``.yaml`` files under ``root``'s content/ and schedules/ folders, sorted."""
    found = []
    for top in ("content", "schedules"):
        for folder, _, names in os.walk(os.path.join(root, top)):
            found.extend(os.path.join(folder, n) for n in names if n.endswith(".yaml"))
    return sorted(found)


def main(root: str) -> int:
    count = 0
    for path in yaml_files(root):
        with open(path, "rb") as handle:
            yaml.load(handle.read(), Loader=yaml.CSafeLoader)
        count += 1
    return count


if __name__ == "__main__":
    print(main(sys.argv[1]))
