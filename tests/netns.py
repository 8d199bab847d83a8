"""Network namespaces that tests make and must remove, even when they fail."""
from __future__ import annotations

import os
import subprocess


def remove_namespaces(names: list[str]) -> None:
    """Kill whatever still runs in each namespace, then delete it."""
    for ns_name in names:
        for pid in subprocess.run(["ip", "netns", "pids", ns_name], capture_output=True,
                                  text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns_name], capture_output=True)
