"""Run by LAVA's own interpreter (``LavaInstall.python``), which has jinja2 and PyYAML.

The suite's package is stdlib only, so what needs those libraries runs in
LAVA's venv, as a script, and answers in JSON:

    python lava_venv.py device DEVICE_TYPES DICTIONARY [NAME=VALUE...]
        -> the device YAML, rendered as LAVA's server does (trim_blocks), with the variables
    python lava_venv.py results LOG                       -> JSON list of the `lvl: results`
                                                            records of a lava-run log
"""

import json
import sys


def render_device(device_types: str, dictionary: str, variables: dict) -> str:
    import jinja2

    with open(dictionary, encoding="utf-8") as f:
        source = f.read()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([device_types]),
                             trim_blocks=True, autoescape=False)
    return env.from_string(source).render(**variables)


def results(log: str) -> list:
    import yaml

    out = []
    with open(log, encoding="utf-8", errors="replace") as f:
        for line in f:
            if '"lvl": "results"' not in line and "lvl: results" not in line:
                continue
            # One record per line: a JSON-style mapping, or a one-item YAML list.
            loaded = yaml.safe_load(line)
            for record in loaded if isinstance(loaded, list) else [loaded]:
                if isinstance(record, dict) and record.get("lvl") == "results":
                    out.append(record["msg"])
    return out


def main(argv: list) -> int:
    if len(argv) >= 3 and argv[0] == "device" and all("=" in a for a in argv[3:]):
        variables = dict(a.split("=", 1) for a in argv[3:])
        sys.stdout.write(render_device(argv[1], argv[2], variables))
    elif len(argv) == 2 and argv[0] == "results":
        json.dump(results(argv[1]), sys.stdout)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
