"""The wire codecs on bytes captured from the real peers: rtpengine's ng answers, Kamailio's evapi stream,
sipp's own RTP captures (`/usr/share/sip-tester/g711a.pcap`, `dtmf_2833_1.pcap`)."""

from __future__ import annotations

import pytest
from zhida.codecs import bencode, g711, netstring, rtp, sdp

pytestmark = pytest.mark.timeout(10)

# rtpengine 10.5.3.5, captured on loopback: a ping, and the answer to an offer of PCMA + telephone-event.
NG_PONG = b"5c7d1e2f d6:result4:ponge"
NG_OFFER_REQUEST = (
    b"a1b2c3 d7:call-id9:capture-17:command5:offer8:from-tag4:tag13:sdp126:v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\n"
    b"s=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\ne"
)
NG_OFFER_ANSWER = (
    b"a1b2c3 d3:sdp175:v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 26600 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    b"a=sendrecv\r\na=rtcp:26601\r\n6:result2:oke"
)
# The start of rtpengine's answer to `delete`: nested dictionaries, lists, integers, a key with a space.
NG_DELETE_ANSWER_HEAD = (
    b"d7:createdi1796284568e10:created_usi871680e11:last signali1796284568e4:SSRCde4:tagsd4:tag1d3:tag4:tag1"
    b"7:createdi1796284568e13:subscriptionsld3:tag0:4:type12:offer/answeree5:flagsl3:RTP6:fillede"
    b"10:local porti26620eee6:result2:oke"
)
# Kamailio 5.6.3's evapi stream after an agent's REGISTER: one netstring.
EVAPI_REGISTER = (
    b'133:{"event":"register","aor":"sip:1001@demo.zhida.local","expires":"600",'
    b'"contact":"<sip:1001@127.0.0.3:38946>","ts":1796284569.2891209},'
)
# sipp's g711a.pcap, first packet: marker, PCMA, seq 0xe6fd, ts 240, 30 ms of A-law silence (0xd5).
RTP_PCMA_FIRST = bytes.fromhex("8088e6fd000000f0dee0ee8f") + b"\xd5" * 240
# sipp's dtmf_2833_1.pcap, first two packets: RFC 4733 event 1, volume 10, durations 0 and 320.
RTP_DTMF_1 = bytes.fromhex("80e51f30000033e00e05384e010a0000")
RTP_DTMF_2 = bytes.fromhex("80651f31000033e00e05384e010a0140")


def _ng(datagram: bytes) -> tuple[bytes, object]:
    cookie, _, body = datagram.partition(b" ")
    return cookie, bencode.decode(body)


def test_bencode_decodes_rtpengine_answers() -> None:
    assert _ng(NG_PONG) == (b"5c7d1e2f", {"result": "pong"})
    cookie, answer = _ng(NG_OFFER_ANSWER)
    assert cookie == b"a1b2c3"
    assert isinstance(answer, dict) and answer["result"] == "ok"
    assert "m=audio 26600 RTP/AVP 8 101\r\n" in answer["sdp"]
    delete = bencode.decode(NG_DELETE_ANSWER_HEAD)
    assert delete["created_us"] == 871680
    assert delete["last signal"] == 1796284568
    assert delete["SSRC"] == {}
    tag = delete["tags"]["tag1"]
    assert tag["subscriptions"] == [{"tag": "", "type": "offer/answer"}]
    assert tag["flags"] == ["RTP", "filled"]


def test_bencode_encodes_the_request_rtpengine_accepted_byte_for_byte() -> None:
    cookie, request = _ng(NG_OFFER_REQUEST)
    assert cookie + b" " + bencode.encode(request) == NG_OFFER_REQUEST  # dictionary keys sorted, as sent
    rebuilt = {"command": "offer", "call-id": "capture-1", "from-tag": "tag1", "sdp": request["sdp"]}
    assert bencode.encode(rebuilt) == NG_OFFER_REQUEST.partition(b" ")[2]


def test_bencode_counts_bytes_not_characters() -> None:
    encoded = bencode.encode({"prompt": "请说"})
    assert encoded == b"d6:prompt6:\xe8\xaf\xb7\xe8\xaf\xb4e"
    assert bencode.decode(encoded) == {"prompt": "请说"}


@pytest.mark.parametrize("broken, reason", [
    (NG_OFFER_ANSWER.partition(b" ")[2][:-1], "truncated"),
    (NG_OFFER_ANSWER.partition(b" ")[2] + b"x", "trailing bytes"),
    (b"d3:sdp999:v=0e", "truncated string"),
    (b"i12x", "unterminated integer"),
    (b"di1ei2ee", "not a string"),
    (b"x", "unexpected byte"),
])
def test_bencode_refuses_broken_input(broken: bytes, reason: str) -> None:
    with pytest.raises(bencode.BencodeError, match=reason):
        bencode.decode(broken)


def test_bencode_has_no_booleans() -> None:
    with pytest.raises(bencode.BencodeError, match="booleans"):
        bencode.encode({"flag": True})


def test_netstring_frames_kamailio_evapi_events_split_anywhere() -> None:
    for cut in range(1, len(EVAPI_REGISTER)):
        decoder = netstring.NetstringDecoder()
        messages = decoder.feed(EVAPI_REGISTER[:cut]) + decoder.feed(EVAPI_REGISTER[cut:] + EVAPI_REGISTER)
        assert len(messages) == 2 and messages[0] == messages[1]
    assert messages[0].startswith(b'{"event":"register"') and len(messages[0]) == 133
    assert netstring.encode(messages[0]) == EVAPI_REGISTER


@pytest.mark.parametrize("broken, reason", [
    (b"12345678901", "too long"),  # no colon within 10 digits
    (b"1x:a,", "bad length prefix"),
    (b"3:abc;", "missing ','"),
    (b"%d:" % (netstring.MAX_LENGTH + 1), "exceeds"),
])
def test_netstring_refuses_broken_framing(broken: bytes, reason: str) -> None:
    with pytest.raises(netstring.NetstringError, match=reason):
        netstring.NetstringDecoder().feed(broken)


def test_sdp_reads_rtpengines_answer() -> None:
    body = str(bencode.decode(NG_OFFER_ANSWER.partition(b" ")[2])["sdp"])
    audio = sdp.parse_audio(body)
    assert audio == sdp.AudioDescription("127.0.0.1", 26600, (8, 101), "sendrecv")


def test_sdp_media_level_connection_wins_and_direction_is_read() -> None:
    offer = ("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
             "m=audio 7000/2 RTP/AVP 0\r\nc=IN IP4 10.0.0.2/127\r\na=sendonly\r\nm=video 7002 RTP/AVP 96\r\n")
    assert sdp.parse_audio(offer) == sdp.AudioDescription("10.0.0.2", 7000, (0,), "sendonly")


def test_sdp_built_for_the_stand_in_socket_is_what_rtpengine_gets() -> None:
    built = sdp.build_audio("127.0.0.1", 40000)
    assert built == ("v=0\r\no=zhida 1 1 IN IP4 127.0.0.1\r\ns=zhida\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                     "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
                     "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n")
    assert sdp.parse_audio(built) == sdp.AudioDescription("127.0.0.1", 40000, (0, 8, 101))


@pytest.mark.parametrize("broken, reason", [
    ("v=0\r\nc=IN IP4 1.2.3.4\r\n", "no audio stream"),
    ("v=0\r\nm=audio 7000 RTP/AVP 0\r\n", "no connection address"),
    ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio seven RTP/AVP 0\r\n", "malformed media line"),
    ("v=0\r\nc=IN IP4\r\nm=audio 7000 RTP/AVP 0\r\n", "malformed connection line"),
])
def test_sdp_refuses_what_it_cannot_use(broken: str, reason: str) -> None:
    with pytest.raises(sdp.SdpError, match=reason):
        sdp.parse_audio(broken)


def test_rtp_parses_sipps_pcma_capture_and_writes_it_back() -> None:
    packet = rtp.parse(RTP_PCMA_FIRST)
    assert packet == rtp.RtpPacket(rtp.PT_PCMA, 0xE6FD, 240, 0xDEE0EE8F, b"\xd5" * 240, marker=True)
    assert bytes(packet) == RTP_PCMA_FIRST
    assert set(g711.alaw_decode(packet.payload).tolist()) == {8}  # A-law's quietest positive step


def test_rtp_parses_sipps_telephone_events() -> None:
    first, second = rtp.parse(RTP_DTMF_1), rtp.parse(RTP_DTMF_2)
    assert (first.payload_type, first.marker, first.sequence) == (rtp.PT_TELEPHONE_EVENT, True, 0x1F30)
    assert (second.marker, second.timestamp) == (False, first.timestamp)  # one event, one timestamp
    assert first.payload == bytes([1, 0x0A, 0x00, 0x00]) and second.payload[2:] == (320).to_bytes(2, "big")


def test_rtp_skips_csrcs_extension_and_padding() -> None:
    header = bytes([0xB1, 0x00]) + (7).to_bytes(2, "big") + (160).to_bytes(4, "big") + (1).to_bytes(4, "big")
    csrc = (2).to_bytes(4, "big")
    extension = bytes.fromhex("bede0001") + b"\x00\x00\x00\x00"
    payload = b"\xff" * 4
    padding = b"\x00\x00\x03"
    packet = rtp.parse(header + csrc + extension + payload + padding)
    assert packet.payload == payload and packet.sequence == 7


@pytest.mark.parametrize("broken, reason", [
    (RTP_DTMF_1[:11], "shorter than an RTP header"),
    (bytes([0x40]) + RTP_DTMF_1[1:], "RTP version 1"),
    (bytes([0x90]) + RTP_DTMF_1[1:12] + b"\xbe\xde", "truncated header extension"),
    (bytes([0x8F]) + RTP_DTMF_1[1:], "header longer than packet"),
])
def test_rtp_refuses_broken_packets(broken: bytes, reason: str) -> None:
    with pytest.raises(rtp.RtpError, match=reason):
        rtp.parse(broken)


def test_g711_round_trips_every_code() -> None:
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    ulaw = g711.ulaw_encode(g711.ulaw_decode(codes))
    # μ-law has two zeros (0x7f and 0xff); the encoder writes the positive one
    assert ulaw == codes.replace(b"\x7f", b"\xff")
