"""Real servers the tests start (Prosody, coturn): waiting until one listens."""
from __future__ import annotations

import asyncio
import subprocess
from typing import Callable


async def wait_listening(proc: subprocess.Popen, name: str, ports: list[int], timeout: float,
                         log_tail: Callable[[], str], host: str = "127.0.0.1") -> None:
    """Return once `proc` accepts TCP on every port; fail with its log if it exits or does not
    listen within `timeout` (polling: a port that is not open yet gives no event to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for port in ports:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited ({proc.returncode}): {log_tail()}")
            try:
                _, w = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
                w.close()
                break
            except (OSError, asyncio.TimeoutError):
                if loop.time() > deadline:
                    raise RuntimeError(f"{name} did not listen on {port}: {log_tail()}") from None
                await asyncio.sleep(0.05)
