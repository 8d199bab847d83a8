"""The top layer: the all-in-one stack, its command line and its config file.

- `cli.py`               the `jitsi-py` command: run, check a config, manage users (`__main__.py`)
- `config.py`            the one TOML file, assembled from each component's own section
- `process.py`           reading the config file a component's entry point is given
- `internal_accounts.py` the accounts of the stack's own focus and bridge, made on first start
- `stack.py`             every component in one process: server, HTTP, MUC, focus, bridge
- `participant/`         a Python conference participant (tests and bots; media through aiortc)
"""
