"""Reading the config file named on a component's command line (the entry points'
`--config FILE`); the rest of what they share is jitsi_base.process."""
from __future__ import annotations

import argparse
import sys

from jitsi_base.process import is_loopback, run_process, start_site, until_signal, warn_if_exposed

from .config import Config, ConfigError, load_config

__all__ = ["load_from_args", "is_loopback", "run_process", "start_site", "until_signal", "warn_if_exposed"]


def load_from_args(prog: str, description: str | None, argv: list[str] | None) -> Config | int:
    """The config named by --config, or an exit code after printing why it cannot be used."""
    ap = argparse.ArgumentParser(prog=prog, description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    args = ap.parse_args(argv)
    try:
        return load_config(args.config)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
