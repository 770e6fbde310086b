"""Print config values as JSON, as the jobs would load them (profile, overlay, environment).

python -m jobs.show_config --profile kubernetes [--config overlay.toml] generation.num_shards

For operators and scripts: what a job would see for a profile and overlay (e.g. the shard
count, or a deployment script sizing something from the config). The DAGs never run it: the
run's values they map over come from the job ``jobs.plan`` in a pod. Exit code 2: the config
or the key is invalid (as for every job, see jobs/cli.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from jobs.cli import EXIT_CONFIG
from jobs.config import ConfigError, PipelineConfig, load_config


def lookup(cfg: PipelineConfig, dotted: str) -> Any:
    """The value at ``section.key`` of ``cfg`` (plain JSON types)."""
    node: Any = cfg.model_dump(mode="json")
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError(f"no config key {dotted!r}")
        node = node[part]
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print config values as JSON.")
    parser.add_argument("--profile", default=None, help="config profile: local or kubernetes")
    parser.add_argument("--config", default=None, help="TOML file overlaid on the profile")
    parser.add_argument("keys", nargs="+", help="dotted keys, e.g. generation.num_shards")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.profile, args.config)
        values = [lookup(cfg, key) for key in args.keys]
    except ConfigError as exc:
        print(f"show_config: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for value in values:
        print(json.dumps(value))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
