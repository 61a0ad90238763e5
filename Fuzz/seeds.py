#!/usr/bin/env python3
"""Writes Herald's fuzz seed corpora into Fuzz/corpus/<target>/ (committed; rerun after edits).

Each seed is a plausible input for its target: valid traffic first (so the fuzzer starts deep
inside the parsers), then a few near-misses that each exercise one refusal. File names say what
a seed is. Run from anywhere: python3 Fuzz/seeds.py
"""
import json
import struct
import zlib
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# --------------------------------------------------------------------------- HTTP

def req(*lines, body=b""):
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode() + body


def chunked(*parts, ext=False, trailers=()):
    out = b""
    for p in parts:
        out += f"{len(p):x}".encode() + (b";name=value" if ext else b"") + b"\r\n" + p + b"\r\n"
    out += b"0\r\n" + b"".join(t.encode() + b"\r\n" for t in trailers) + b"\r\n"
    return out


H = "Host: localhost:8080"
http = {
    "get-root": req("GET / HTTP/1.1", H, "User-Agent: curl/8.5.0", "Accept: */*"),
    "head-healthz": req("HEAD /healthz HTTP/1.1", H),
    "get-readyz-metrics-pipelined": req("GET /readyz HTTP/1.1", H) + req("GET /metrics HTTP/1.1", H)
    + req("GET /healthz HTTP/1.1", H, "Connection: close"),
    "publish-path": req("POST /publish/news HTTP/1.1", H, "Content-Type: application/octet-stream",
                        "Content-Length: 5", body=b"hello"),
    "publish-path-sharded-percent": req("POST /publish/mail%2D1%20x?sharded=true HTTP/1.1", H,
                                        "Content-Length: 3", body=b"a\x00b"),
    "publish-json": req("POST /publish HTTP/1.1", H, "Content-Type: application/json",
                        "Content-Length: 46", body=b'{"channel":"mail-1","message":"you have mail"}'),
    "publish-batch": req("POST /publish HTTP/1.1", H, "Content-Type: application/json", "Content-Length: 79",
                         body=b'{"messages":[{"channel":"news","message":"a"},{"channel":"news","message":"b"}]}'),
    "publish-chunked": req("POST /publish/news HTTP/1.1", H, "Transfer-Encoding: chunked",
                           body=chunked(b"hello ", b"world")),
    "publish-chunked-ext-trailers": req("POST /publish/news HTTP/1.1", H, "Transfer-Encoding: chunked",
                                        body=chunked(b"x" * 20, b"y", ext=True, trailers=["X-Trailer: 1", "Y: 2"])),
    "publish-chunked-uppercase-hex": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: Chunked",
                                         body=b"1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n"),
    "pipelined-mixed": req("POST /publish/a HTTP/1.1", H, "Content-Length: 1", body=b"1")
    + req("POST /publish/b HTTP/1.1", H, "Transfer-Encoding: chunked", body=chunked(b"22"))
    + req("GET /healthz HTTP/1.1", H),
    "http10-keepalive": req("GET /healthz HTTP/1.0", "Connection: keep-alive") + req("GET / HTTP/1.0"),
    "ws-upgrade": req("GET /subscribe?channel=news&pattern=mail-*&shard=s&format=raw HTTP/1.1", H,
                      "Upgrade: websocket", "Connection: keep-alive, Upgrade",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                      "Origin: http://localhost:8080"),
    "watch-query": req("GET /events?watch=order%3A42&watch=order:42&watch_pattern=cart%3A*&watch_pattern=* HTTP/1.1", H,
                       "Accept: text/event-stream"),
    # Names equal as text but not as bytes (precomposed and decomposed), raw and escaped.
    "names-by-bytes": req("GET /events?channel=caf%C3%A9&channel=cafe%CC%81&stream=caf\u00e9+x&queue=%FF HTTP/1.1", H)
    + req("POST /publish/cafe%CC%81 HTTP/1.1", H, "Content-Length: 1", body=b"1"),
    "ws-upgrade-deflate-browser": req("GET /subscribe?channel=news HTTP/1.1", H, "Upgrade: websocket",
                                      "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                      "Sec-WebSocket-Version: 13",
                                      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
    "ws-upgrade-deflate-offers": req("GET /echo HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade",
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                                     "Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; "
                                     "server_max_window_bits=8; client_no_context_takeover",
                                     'Sec-WebSocket-Extensions: permessage-deflate ; server_no_context_takeover;'
                                     'client_no_context_takeover; server_max_window_bits="10"; client_max_window_bits=12'),
    "ws-upgrade-deflate-bad-params": req("GET /echo HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade",
                                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                                         "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=010; "
                                         "mux, permessage-deflate; client_no_context_takeover; "
                                         "client_no_context_takeover, permessage-deflate;"),
    "ws-upgrade-bad-version": req("GET /subscribe HTTP/1.1", H, "Upgrade: websocket", "Connection: Upgrade",
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 8"),
    "presence-read-and-join": req("GET /presence/room%20%7Beu%7D HTTP/1.1", H)
    + req("GET /events?channel=room&presence=true&user=al%C3%AFce&presence=maybe HTTP/1.1", H,
          "Accept: text/event-stream"),
    "auth-headers": req("POST /publish/news HTTP/1.1", H, "Authorization: Bearer abc.def.ghi",
                        "Origin: https://example.com", "Content-Length: 2", body=b"hi"),
    "expect-continue": req("POST /publish/x HTTP/1.1", H, "Expect: 100-continue", "Content-Length: 4", body=b"abcd"),
    "tabs-and-spaces-in-values": req("GET /%E2%9C%93?q=a+b&r=%zz HTTP/1.1", "Host:\t localhost \t", "X-Empty:"),
    "bad-te-and-cl": req("POST /publish/a HTTP/1.1", H, "Content-Length: 3", "Transfer-Encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
    "bad-te-gzip": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"),
    "bad-cl-duplicate": req("POST /publish/a HTTP/1.1", H, "Content-Length: 1", "Content-Length: 2", body=b"ab"),
    "bad-cl-sign": req("POST /publish/a HTTP/1.1", H, "Content-Length: +1", body=b"a"),
    "bad-version": req("GET / HTTP/2.0", H),
    "bad-version-text": req("GET / HTTX/1.1", H),
    "bad-header-no-colon": req("GET / HTTP/1.1", "Host localhost"),
    "bad-obs-fold": req("GET / HTTP/1.1", H, "X-Folded: a", " b"),
    "bad-bare-lf": b"GET / HTTP/1.1\nHost: x\n\n",
    "bad-chunk-size": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"zz\r\nab\r\n0\r\n\r\n"),
    "bad-chunk-no-crlf": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked", body=b"2\r\nabXY0\r\n\r\n"),
    "long-header": req("GET / HTTP/1.1", H, "X-Long: " + "v" * 1100),
    # Issue 11 (hostile-client review): chunk extensions and trailers checked (RFC 9112 §7.1.1-2),
    # Host once (§3.2), one Origin, absolute-form targets (§3.2.2), HTTP/1.0 + Transfer-Encoding
    # (§6.1), Expect (RFC 9110 §10.1.1).
    "publish-chunked-ext-quoted": req("POST /publish/news HTTP/1.1", H, "Transfer-Encoding: chunked",
                                      body=b'3 ; a = b ;flag\r\nabc\r\n2;q="x \\" y"\r\nde\r\n0;last\r\nX-T: 1\r\n\r\n'),
    "bad-chunk-ext-bare-lf": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked",
                                 body=b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    "bad-chunk-ext-bare-cr": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked",
                                 body=b"5;a=\"x\ry\"\r\nhello\r\n0\r\n\r\n"),
    "bad-trailer-bare-lf": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked",
                               body=b"5\r\nhello\r\n0\r\nX-T: a\nb\r\n\r\n"),
    "bad-trailer-fold": req("POST /publish/a HTTP/1.1", H, "Transfer-Encoding: chunked",
                            body=b"5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
    "absolute-form": req("GET http://localhost:8080/streams/s?count=1 HTTP/1.1", H),
    "absolute-form-empty-path": req("GET HTTPS://localhost?x=1 HTTP/1.1", H) + req("OPTIONS * HTTP/1.1", H),
    "bad-target-forms": req("GET ftp://h/ HTTP/1.1", H) + req("GET http://u@h/ HTTP/1.1", H),
    "bad-no-host": req("GET /healthz HTTP/1.1", "Accept: */*"),
    "bad-two-hosts": req("GET /healthz HTTP/1.1", H, "host: other"),
    "bad-host-value": req("GET /healthz HTTP/1.1", "Host: a b@c"),
    "bad-two-origins": req("GET /healthz HTTP/1.1", H, "Origin: https://a.example", "Origin: https://b.example"),
    "bad-http10-te": req("POST /publish/a HTTP/1.0", "Transfer-Encoding: chunked", body=b"1\r\na\r\n0\r\n\r\n"),
    "expect-continue-chunked": req("POST /publish/x HTTP/1.1", H, "Expect: 100-Continue", "Transfer-Encoding: chunked",
                                   body=chunked(b"abcd")),
    "bad-expect-unknown": req("POST /publish/x HTTP/1.1", H, "Expect: 200-ok", "Content-Length: 2", body=b"hi"),
    "body-1500": req("POST /publish/big HTTP/1.1", H, "Content-Length: 1500", body=bytes(range(256)) * 5 + b"e" * 220),
}

# --------------------------------------------------------------------------- WebSocket


def frame(opcode, payload=b"", fin=True, mask=b"\x37\xfa\x21\x3d", rsv=0, force_len=None):
    if isinstance(payload, str):
        payload = payload.encode()
    out = bytes([(0x80 if fin else 0) | rsv | opcode])
    mbit = 0x80 if mask is not None else 0
    n = len(payload)
    kind = force_len or ("7" if n < 126 else "16" if n <= 0xFFFF else "64")
    if kind == "7":
        out += bytes([mbit | n])
    elif kind == "16":
        out += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        out += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return out + payload
    return out + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def deflate(data, wbits=15):
    """`data` as permessage-deflate sends it: raw DEFLATE, sync-flushed, 00 00 FF FF removed."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def deflate_final(data):
    """A message ending in a final block (BFINAL set) instead of a sync flush."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH)


def deflate_context(*messages):
    """Messages compressed with context takeover: later ones refer back into earlier ones."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return [(c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH))[:-4] for m in messages]


DEFLATE_CONTEXT = deflate_context(b'{"op":"publish","channel":"news","message":"hello"}' * 3,
                                  b'{"op":"publish","channel":"news","message":"hello"}' * 3)


def close(code=None, reason=b""):
    return frame(0x8, b"" if code is None else struct.pack("!H", code) + reason)


ws = {
    "text-hello": frame(0x1, "Hello"),
    "text-subscribe": frame(0x1, '{"op":"subscribe","channels":["a","b"],"id":1}'),
    "text-psubscribe-publish-ping": frame(0x1, '{"op":"psubscribe","patterns":["mail-*"],"id":"x"}')
    + frame(0x1, '{"op":"publish","channel":"a","message":{"k":[1,2.5e3,null]},"sharded":false}')
    + frame(0x1, '{"op":"ping","id":{"n":-0.0}}'),
    "text-unsubscribe-all": frame(0x1, '{"op":"unsubscribe"}') + close(1000),
    "text-fragmented": frame(0x1, '{"op":"sub', fin=False) + frame(0x0, 'scribe","channel":', fin=False)
    + frame(0x0, '"news"}'),
    "text-fragmented-ping-between": frame(0x1, "ab", fin=False) + frame(0x9, "p") + frame(0x0, "cd"),
    "text-utf8-split-across-fragments": frame(0x1, "caf\xc3".encode("latin-1"), fin=False)
    + frame(0x0, b"\xa9 \xf0\x9f\x98", fin=False) + frame(0x0, b"\x80"),
    "binary": frame(0x2, bytes(range(40))),
    "binary-fragmented": frame(0x2, b"\x00\xff", fin=False) + frame(0x0, b"\x80", fin=False) + frame(0x0, b""),
    "ping-pong": frame(0x9, b"hi") + frame(0xA, b"") + frame(0x9, b"x" * 125),
    "close-1000-reason": close(1000, "bye".encode()),
    "close-empty": close(),
    "close-4000": close(4999, "app".encode()),
    "len16": frame(0x1, "A" * 200),
    "len16-nonminimal": frame(0x2, b"abc", force_len="16"),
    "len64-nonminimal": frame(0x1, "abc", force_len="64"),
    "len64-1100": frame(0x2, bytes(1100), force_len="64"),
    "mask-zero": frame(0x1, "zero mask", mask=b"\x00\x00\x00\x00"),
    "bad-unmasked": frame(0x1, "x", mask=None),
    "bad-rsv": frame(0x1, "x", rsv=0x40),
    "bad-opcode": frame(0x3, "x"),
    "bad-continuation-first": frame(0x0, "x"),
    "bad-fragmented-ping": frame(0x9, "x", fin=False),
    "bad-long-ping": frame(0x9, "x" * 126),
    "bad-utf8": frame(0x1, b"\xed\xa0\x80"),
    "bad-close-code": close(1005),
    "bad-close-one-byte": frame(0x8, b"\x03"),
    "bad-new-message-mid-fragment": frame(0x1, "a", fin=False) + frame(0x1, "b"),
    # permessage-deflate (RFC 7692): RSV1 on a message's first frame, raw DEFLATE without its tail.
    "deflate-text": frame(0x1, deflate(b'{"op":"subscribe","channels":["a","b"],"id":1}' * 4), rsv=0x40),
    "deflate-context-takeover": frame(0x1, DEFLATE_CONTEXT[0], rsv=0x40) + frame(0x1, DEFLATE_CONTEXT[1], rsv=0x40),
    "deflate-fragmented-ping-between": frame(0x2, deflate(bytes(range(200)) * 3)[:9], fin=False, rsv=0x40)
    + frame(0x9, "p") + frame(0x0, deflate(bytes(range(200)) * 3)[9:]),
    "deflate-then-plain": frame(0x1, deflate(b"x" * 300), rsv=0x40) + frame(0x1, "plain"),
    "deflate-bomb": frame(0x2, deflate(bytes(4 << 20)), rsv=0x40),
    "deflate-final-block": frame(0x1, deflate_final(b"final block " * 20), rsv=0x40),
    "bad-deflate-corrupt": frame(0x1, b"\xff\xff\xff\xff", rsv=0x40),
    "bad-deflate-rsv1-continuation": frame(0x1, deflate(b"y" * 300)[:3], fin=False, rsv=0x40)
    + frame(0x0, deflate(b"y" * 300)[3:], rsv=0x40),
    "bad-deflate-rsv1-ping": frame(0x9, "p", rsv=0x40),
    "bad-deflate-invalid-utf8": frame(0x1, deflate(b"\xed\xa0\x80" * 100), rsv=0x40),
    "bad-len64-top-bit": bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]) + b"\x01\x02\x03\x04",
}

# --------------------------------------------------------------------------- JSON

json_seeds = {
    "subscribe": '{"op":"subscribe","channels":["a","b"],"id":1}',
    "subscribe-single": '{"op":"subscribe","channel":"news"}',
    "psubscribe": '{"op":"psubscribe","patterns":["mail-*","h?llo","[ab]c"],"id":"req-7"}',
    "ssubscribe": '{"op":"ssubscribe","channels":["s"],"id":null}',
    "unsubscribe": '{"op":"unsubscribe","channels":["a"],"patterns":["mail-*"],"shards":["s"]}',
    "publish": '{"op":"publish","channel":"a","message":"x","sharded":true,"id":[1,{"k":false}]}',
    "publish-object": '{"channel":"c","message":{"nested":{"deep":[1,-2,3.25,4e-7,5E+3]}}}',
    "batch": '{"messages":[{"channel":"news","message":"a"},{"channel":"news","message":"b"}]}',
    "ping": '{"op":"ping"}',
    "refresh": '{"op":"refresh","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjoxfQ.c2ln","id":2}',
    "presence": '{"op":"presence","channel":"room","id":3}',
    "subscribe-presence": '{"op":"subscribe","channel":"room","presence":true,"id":4}',
    "watch": '{"op":"watch","keys":["order:42","leaderboard"],"patterns":["cart:*"],"id":5}',
    "watch-single": '{"op":"watch","key":"k","pattern":"p?[ab]*"}',
    "unwatch": '{"op":"unwatch","keys":["order:42"],"patterns":["cart:*"],"id":6}',
    "watch-value": '{"type":"value","key":"z","kind":"zset","value":[["a",1.5],["top","inf"]]}',
    "presence-event": '{"type":"join","channel":"room","client":"00ab12cd34ef5678","user":null,"info":{"n":1},"since":1732460000000}',
    "escapes": '{"s":"quote \\" backslash \\\\ slash \\/ \\b\\f\\n\\r\\t \\u0000 \\u001f \\u007f"}',
    "unicode": '{"snow":"\\u2603","pair":"\\ud83d\\ude00","raw":"h\u00e9 \u2603 \U0001f600"}',
    "whitespace": ' \t\r\n[ 1 , true , false , null , "" , { } , [ ] ] \n',
    "numbers": '[0,-0,1.0,-1.5e10,2E-3,123456789012345678901234567890,0.000001]',
    "duplicate-keys": '{"a":1,"a":2,"b":{"a":3}}',
    "deep-63": "[" * 63 + "]" * 63,
    "deep-65": "[" * 65 + "]" * 65,
    "bad-lone-surrogate": '"\\ud800"',
    "bad-trailing": '{"op":"ping"} x',
    "bad-leading-zero": "[01]",
    "bad-utf8": b'"\xc3\x28"',
    "bad-control": '"a\x01b"',
    "redis-payload-binary": b"chan\x00\xff\xfe binary payload \x80",
}

# --------------------------------------------------------------------------- auth

def b64url(data):
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims, secret=b"fuzz-secret-fuzz-secret-fuzz-secret!", alg="HS256"):
    import hashlib
    import hmac
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


auth = {
    # token \n pattern \n channel \n globs...
    "valid-token": jwt({"sub": "u", "exp": 4102444800, "subscribe": ["news.*"], "publish": ["chat.room-7"]})
    + "\nnews.*\nnews.today\nnews.*\nchat.room-7",
    "expired-token": jwt({"exp": 1, "subscribe": ["*"]}) + "\nroom-?\nroom-1\nroom-*\nroom-?",
    "nbf-token": jwt({"nbf": 4102444800}) + "\nmail-[ab]\nmail-a\nmail-*",
    "alg-none": b64url(b'{"alg":"none"}') + "." + b64url(b'{"subscribe":["*"]}') + ".\n*\nx\n*",
    "api-key": "fuzz-api-key-0123456789\nchat.\\*\nchat.*\nchat.*\n[a-z]*",
    "bad-signature": jwt({"subscribe": ["*"]}, secret=b"wrong") + "\n\u00e9*\ne\u0301x\n\u00e9*",
    "garbage": "a.b.c\n[^a-c]?*\\\nabc\n*?*?*?*?*?*?*?*?*?*?b\naaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "presence-identity": jwt({"sub": "alice", "info": {"name": "Alice", "n": 1e300}, "exp": 4102444800,
                              "subscribe": ["room-*"]}) + "\nroom-*\nroom-1\nroom-*",
}

# --------------------------------------------------------------------------- issue 11: tokens, close codes, origins

def jwt_with_header(header, claims, secret=b"fuzz-secret-fuzz-secret-fuzz-secret!"):
    import hashlib
    import hmac
    head = b64url(json.dumps(header, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def twin(token):
    """The same token with the unused low bits of its last character set (same bytes decoded)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return token[:-1] + alphabet[alphabet.index(token[-1]) | 3]


_valid = jwt({"sub": "u", "exp": 4102444800, "subscribe": ["news.*"]})
auth.update({
    # Line 1 is also judged as an Origin header against a list and the default policy.
    "crit-unknown": jwt_with_header({"alg": "HS256", "crit": ["x"], "x": 1}, {"subscribe": ["*"]}) + "\nnews.*\nnews.a\n*",
    "crit-empty": jwt_with_header({"alg": "HS256", "crit": []}, {"subscribe": ["*"]}),
    "crit-null": jwt_with_header({"alg": "HS256", "crit": None}, {"subscribe": ["*"]}),
    "signature-twin": twin(_valid),
    "standard-alphabet": _valid.replace("-", "+").replace("_", "/") + "==",
    "origin-loopback": "http://localhost:5173\nroom-?\nroom-1\nroom-*",
    "origin-loopback-v6": "http://[::1]:8080",
    "origin-lookalike": "http://localhost:80@evil.example",
    "origin-listed": "https://a.example",
    "origin-null": "null",
})

ws.update({
    "close-1012": close(1012, b"restart"),
    "close-1013": close(1013),
    "close-1014": close(1014, b"gateway"),
    "bad-close-1015": close(1015),
    "bad-close-1016": close(1016),
})

# --------------------------------------------------------------------------- config

config = {
    "defaults-url": "redis://127.0.0.1:6379",
    "url-password": "redis://:s3cr%40t@redis.internal:6380/2",
    "url-user-password": "redis://default:p%3Ass@[::1]:7000/15",
    "url-list": "redis://10.0.0.1:7000, redis://10.0.0.2:7001 ,redis://[fe80::1%25eth0]:7002",
    "flags": "host=0.0.0.0\nport=8080\nredis=redis://localhost\nloops=4\npublic=./public\n"
             "max-body=1m\nmax-header=16k\nmax-message=64KiB\nmax-outbound=4M\nheader-timeout=10\n"
             "keepalive-timeout=60\nping-interval=0.5\nlog-level=DEBUG\necho=true",
    "environment": "HERALD_HOST=::\nHERALD_PORT=65535\nHERALD_REDIS_URL=redis://u@h:1/0\nHERALD_LOOPS=256\n"
                   "HERALD_MAX_BODY=0\nHERALD_MAX_HEADER=1024\nHERALD_MAX_MESSAGE=125\nHERALD_MAX_OUTBOUND=1g\n"
                   "HERALD_HEADER_TIMEOUT=86400\nHERALD_PING_INTERVAL=1e-3\nHERALD_KEEPALIVE_TIMEOUT= 5 \n"
                   "HERALD_LOG_LEVEL=trace\nHERALD_ECHO=0",
    "flag-wins": "port=9000\nHERALD_PORT=notanumber\nmax-body=2k\nHERALD_MAX_BODY=1",
    "bad-values": "port=0\nloops=257\nmax-header=1023\nheader-timeout=nan\nmax-body=99999999999999999999g",
    "bad-urls": "http://x\nredis://\nredis://h:0\nredis://h/abc\nredis://[::1\nredis://h:65536\nredis://%zz@h",
    "auth-flags": "api-keys=key-0123456789abcdef, key-fedcba9876543210\njwt-secret=0123456789abcdef0123456789abcdef\n"
                  "allowed-origins=https://a.example,http://b.example:8080\n"
                  "HERALD_API_KEYS=short\nHERALD_JWT_SECRET=x\nHERALD_ALLOWED_ORIGINS=*",
    "limits-flags": "max-connections=10000\nmax-subscriptions=1000\nmax-pending=10000\nmax-blocking=64\n"
                    "claim-idle=30\npresence-ttl=1.5\nHERALD_PRESENCE_TTL=0.5\nslow-consumer=close\nlog-format=json\naccess-log=1\n"
                    "HERALD_MAX_CONNECTIONS=0\nHERALD_SLOW_CONSUMER=block",
    "watch-flags": "max-watch-keys=1000\nmax-watch-value=1m\nkeyspace-events=1\nHERALD_MAX_WATCH_KEYS=0\n"
                   "HERALD_MAX_WATCH_VALUE=100\nHERALD_KEYSPACE_EVENTS=maybe",
    "cluster-url": "redis+cluster://10.0.0.1:7000\nredis=redis://a:7000,redis://b:7001/3",
    "sentinel-url": "redis+sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2,[::1]:26380/my%40master/3",
    "sentinel-flags": "redis=redis+sentinel://127.0.0.1:26379/m\nsentinel-password=s3cret\n"
                      "HERALD_SENTINEL_PASSWORD=other",
    "bad-sentinel-urls": "redis+sentinel://h\nredis+sentinel://h/\nredis+sentinel:///m\nredis+sentinel://a,,b/m\n"
                         "redis+sentinel://h:0/m\nredis+sentinel://h/m/x\nredis+sentinel://h/m/1/2\nredis+sentinel://h/a%20b",
    "tls-urls": "rediss://default:pw@cache.example.com:6380/0\nredis-tls-verify=off\n"
                "redis=rediss+cluster://10.0.0.1:7000,rediss://[::1]:7001\nredis=rediss://a,redis://b\n"
                "redis-ca=/nonexistent\nredis-cert=/etc/hostname\nHERALD_REDIS_KEY=\nHERALD_REDIS_TLS_VERIFY=",
    "command-line": "port=--loops\nmax-body=-5\nhost=\necho=1\n-port=3\nhealthcheck=x\nhelp=\nport=9000",
}

for name, data in http.items():
    write("FuzzHTTPParser", name, data)
for name, data in ws.items():
    write("FuzzWebSocket", name, data)
for name, data in json_seeds.items():
    write("FuzzJSON", name, data.encode("utf-8") if isinstance(data, str) else data)
for name, data in config.items():
    write("FuzzConfig", name, data)
for name, data in auth.items():
    write("FuzzAuth", name, data)
print("seeds written to", CORPUS)
