"""A large conference through the whole stack: 50 synthetic participants in one room.

Every participant signs in, asks the focus for the room, joins it, answers the focus's Jingle
offer and connects ICE + DTLS-SRTP with the bridge (loadgen.synthetic), then sends silent audio
(two of them speak) and thumbnail video. The bridge must relay both speakers to everyone, no
more than last-N videos to anyone, and drop the silent audio instead of relaying it.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from conftest import make_config, until
from jitsi_py.stack import Stack
from loadgen.synthetic import SyntheticParticipant, prepare_room

N = 50
LAST_N = 5
SPEAKERS = (17, 34)  # in the middle of the join order: the bridge has to rank them up


async def join_all(people: list[SyntheticParticipant], at_once: int = 10) -> None:
    """Everyone joins, `at_once` at a time; all must make it."""
    sem = asyncio.Semaphore(at_once)

    async def join(p: SyntheticParticipant) -> None:
        async with sem:
            await p.join(timeout=60)

    results = await asyncio.gather(*(join(p) for p in people), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, f"{len(failed)} participants did not join: {failed[:3]}"


@pytest.mark.timeout(120)
async def test_fifty_participants_two_speakers_last_n(tmp_path):
    t_start = time.monotonic()
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=LAST_N,
                              limits__anonymous_sessions_per_minute=0, limits__connections_per_ip=1000))
    await stack.start()
    host, port = stack.server.c2s_address
    people: list[SyntheticParticipant] = []
    try:
        for i in range(N):
            # every video packet is decrypted (video_sample=1) so each receiver knows exactly
            # whose video it got; 10 packets/s keeps the one test process light
            people.append(SyntheticParticipant(host, port, "big", cafile=str(stack.cert_path), nick=f"p{i:02d}",
                                               speaking=i in SPEAKERS, video_rate=10, video_sample=1,
                                               audio_ssrc=0x1000 + 2 * i, video_ssrc=0x1001 + 2 * i))
        speakers = {people[i].audio_ssrc for i in SPEAKERS}
        await prepare_room(host, port, "big", cafile=str(stack.cert_path))
        await join_all(people)
        conf = next(iter(stack.bridge.conferences.values()))
        assert len(conf.endpoints) == N
        assert all(ep.transport is not None and ep.transport.state == "connected" for ep in conf.endpoints.values())

        # everyone hears both speakers (a speaker hears the other one)
        await until(lambda: all(p.heard(s) for p in people for s in speakers if s != p.audio_ssrc), 30,
                     "every participant to receive both speakers")

        # a measured window: from now until every receiver has 60 packets from each speaker
        dropped0 = conf.silence_dropped
        for p in people:
            p.reset_stats()
        await until(lambda: all(s in p.senders and p.senders[s].decrypted >= 60
                                 for p in people for s in speakers if s != p.audio_ssrc), 30,
                     "60 packets from each speaker at every receiver")
        # meanwhile the non-speakers' silence was dropped at the bridge, ~50 packets/s each
        assert conf.silence_dropped - dropped0 > (N - len(SPEAKERS)) * 50 * 0.8

        for p in people:
            want = speakers - {p.audio_ssrc}
            got_audio = p.senders_of("audio")
            assert got_audio == want, f"{p.nick} got audio from {got_audio}, expected only the speakers {want}"
            for s in want:
                st = p.senders[s]
                assert st.decrypted >= 60, f"{p.nick}: only {st.decrypted} packets from speaker {s:#x}"
                assert st.loss() < 0.05, f"{p.nick}: {st.loss():.1%} of speaker {s:#x}'s audio lost"
            videos = p.senders_of("video")
            assert 0 < len(videos) <= LAST_N, f"{p.nick} got video from {len(videos)} senders"
            assert p.video_ssrc not in videos  # never our own stream back
            assert p.decrypt_errors == 0
        # the speakers are in everyone's last-N (ranked first by their audio level)
        speaker_video = {people[i].video_ssrc for i in SPEAKERS}
        for p in people:
            assert speaker_video - {p.video_ssrc} <= p.senders_of("video"), p.nick

        # the focus collects source changes in a conference this large: far fewer source-adds
        # than one per join per participant already in the call (N * (N - 1) / 2)
        updates = sum(p.source_updates for p in people)
        assert updates < N * (N - 1) // 4, updates
    finally:
        await asyncio.gather(*(p.leave() for p in people), return_exceptions=True)
        await stack.stop()
    assert time.monotonic() - t_start < 90


@pytest.mark.timeout(120)
async def test_forty_participants_cascaded_over_two_bridges(tmp_path):
    """40 join at once with [focus] max_bridge_participants = 20 and a second bridge process:
    the focus fills the first bridge, links the second while joins keep coming, and everyone,
    on either bridge, hears both speakers and gets at most last-N videos."""
    from conftest import BridgeProcess
    n, speakers_at = 40, (10, 30)
    stack = Stack(make_config(server__data_dir=str(tmp_path / "data"), bridge__last_n=LAST_N,
                              focus__max_bridge_participants=n // 2,
                              limits__anonymous_sessions_per_minute=0, limits__connections_per_ip=1000))
    await stack.start()
    jvb2 = await BridgeProcess(stack, tmp_path, "jvb2", last_n=LAST_N).start()
    host, port = stack.server.c2s_address
    people = [SyntheticParticipant(host, port, "two", cafile=str(stack.cert_path), nick=f"q{i:02d}",
                                   speaking=i in speakers_at, video_rate=10, video_sample=1,
                                   audio_ssrc=0x2000 + 2 * i, video_ssrc=0x2001 + 2 * i) for i in range(n)]
    try:
        await prepare_room(host, port, "two", cafile=str(stack.cert_path))
        await join_all(people)
        conf = stack.focus.conferences["two@conference.localhost"]
        per_bridge: dict[str, int] = {}
        for p in conf.participants.values():
            per_bridge[p.bridge.rsplit("/", 1)[1]] = per_bridge.get(p.bridge.rsplit("/", 1)[1], 0) + 1
        assert per_bridge == {"jvb1": n // 2, "jvb2": n // 2}, per_bridge
        speakers = {people[i].audio_ssrc for i in speakers_at}
        await until(lambda: all(p.heard(s) for p in people for s in speakers if s != p.audio_ssrc), 30,
                    "every participant, on either bridge, to hear both speakers")
        for p in people:
            p.reset_stats()
        await until(lambda: all(s in p.senders and p.senders[s].decrypted >= 30
                                for p in people for s in speakers if s != p.audio_ssrc), 30,
                    "30 packets from each speaker at every receiver")
        for p in people:
            assert p.senders_of("audio") == speakers - {p.audio_ssrc}, p.nick
            assert 0 < len(p.senders_of("video")) <= LAST_N, p.nick
            assert all(p.senders[s].loss() < 0.05 for s in speakers if s != p.audio_ssrc), p.nick
        bconf = next(iter(stack.bridge.conferences.values()))
        assert bconf.local_endpoints() == n // 2 and len(bconf.endpoints) == n
        assert bconf.relays["jvb2"].connected
    finally:
        await asyncio.gather(*(p.leave() for p in people), return_exceptions=True)
        await jvb2.kill()
        await stack.stop()
