"""The bridge's HTTP faces.

The public one (the stack's web port, or a separate bridge's `http_port`) carries only what
participants and load balancers need: the bridge channel WebSocket and a bare health check.
Stats and metrics name every conference, meeting id and participant, so they live on the admin
one (127.0.0.1 by default), never on a port the guests reach.
"""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, CounterMetricFamily

from .bridge import VERSION, Bridge
from .channel import BRIDGE, colibri_ws


async def health(request: web.Request) -> web.Response:
    bridge: Bridge = request.app[BRIDGE]
    if not bridge.healthy:
        return web.json_response({"healthy": False}, status=500)
    return web.json_response({"healthy": True})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"name": "jitsi-py bridge", "version": VERSION})


async def stats(request: web.Request) -> web.Response:
    bridge: Bridge = request.app[BRIDGE]
    body = bridge.stats()
    if request.query.get("conferences") == "true":
        body["conference_list"] = [c.stats() for c in bridge.conferences.values()]
        if request.query.get("endpoints") == "true":  # per endpoint: transport, bandwidth estimate
            for entry, conf in zip(body["conference_list"], bridge.conferences.values()):
                entry["endpoint_list"] = [ep.stats() for ep in conf.endpoints.values()]
    return web.json_response(body)


class _Collector:
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge

    def collect(self):  # type: ignore[no-untyped-def]
        s = self.bridge.stats()
        for name, help_ in (("conferences", "Conferences on this bridge"), ("endpoints", "Endpoints on this bridge"),
                            ("stress_level", "Load relative to what one core forwards"),
                            ("packet_rate", "Forwarded packets per second"),
                            ("relays", "Links to other bridges of cascaded conferences"),
                            ("relayed_endpoints", "Participants of other bridges seen over relays")):
            g = GaugeMetricFamily(f"jitsi_bridge_{name}", help_)
            g.add_metric([], float(s[name]))
            yield g
        for name, help_ in (("packets_forwarded", "RTP packets sent to receivers"),
                            ("silence_dropped", "Silent audio packets not relayed"),
                            ("unknown_dropped", "Packets from unknown SSRCs"),
                            ("padding_dropped", "Padding-only probes not relayed"),
                            ("undecryptable", "Datagrams from participants that failed SRTP unprotect"),
                            ("relay_packets_in", "Packets received over relays"),
                            ("relay_packets_out", "Packets sent over relays")):
            c = CounterMetricFamily(f"jitsi_bridge_{name}", help_)
            c.add_metric([], float(s[name]))
            yield c


async def metrics(request: web.Request) -> web.Response:
    registry: CollectorRegistry = request.app[REGISTRY]
    return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")


REGISTRY = web.AppKey("bridge_metrics", CollectorRegistry)


def setup_public(app: web.Application, bridge: Bridge) -> None:
    """Routes for the public port: health (no figures) and the bridge channel."""
    app[BRIDGE] = bridge
    app.router.add_get("/about/health", health)
    app.router.add_get("/colibri-ws/{bridge}/{conference}/{endpoint}", colibri_ws)


def setup_admin(app: web.Application, bridge: Bridge) -> None:
    """Routes for the admin port: health, version, stats and Prometheus metrics."""
    app[BRIDGE] = bridge
    registry = CollectorRegistry()
    registry.register(_Collector(bridge))  # type: ignore[arg-type]
    app[REGISTRY] = registry
    app.router.add_get("/about/health", health)
    app.router.add_get("/about/version", version)
    app.router.add_get("/colibri/stats", stats)
    app.router.add_get("/metrics", metrics)
