#!/usr/bin/python3
"""Independent RFC 8441 (WebSocket over HTTP/2) client used as an interop peer.

Why this exists: every other client in this repo (client/, lib/ws-h2-adapter.ts) shares code and
assumptions with the server it tests, so a bug in that shared understanding of RFC 8441 would pass
unnoticed. This peer is written against the RFCs with two third-party protocol libraries that have
never seen our code:

  * hyper-h2 (Debian ``python3-h2``)       -- HTTP/2 framing, HPACK, stream state, flow control;
  * wsproto  (Debian ``python3-wsproto``)  -- RFC 6455 framing, masking, close handshake.

Both are sans-I/O, so this file owns the socket and the event loop; that keeps every byte on the
wire under our control and lets us assert "all N WebSockets shared ONE TCP connection".

Run it with Debian's interpreter (``/usr/bin/python3``): a pyenv/venv python on PATH usually lacks
the Debian packages.

    /usr/bin/python3 test/peers/rfc8441_client.py --port 9101 --streams 200 --messages 3 --protocol chat.v1

Output: exactly ONE JSON line on stdout (diagnostics go to stderr), e.g.

    {"streams_opened": 200, "echoes_ok": 600, "echoes_expected": 600, "backends": {"b1": 200},
     "protocol": "chat.v1", "close_codes": {"1000": 200}, "tcp_connections": 1, "errors": [], ...}

Exit status: 0 only if every stream opened, every echo matched, every close handshake answered 1000
and nothing else went wrong; 1 on any mismatch or timeout; 2 on bad usage (argparse);
3 if the server did not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441 section 3), since
that is a configuration problem rather than a WebSocket bug and deserves a distinct signal;
4 if h2/wsproto cannot be imported (wrong interpreter or packages missing).
"""

import argparse
import collections
import json
import select
import socket
import sys
import time

try:
    import h2.config
    import h2.errors
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
    import wsproto.connection
    import wsproto.events
    import wsproto.utilities
except ImportError as exc:  # pragma: no cover - depends on the host
    sys.stderr.write(
        "rfc8441_client.py: %s\n"
        "Install the Debian packages and run with /usr/bin/python3:\n"
        "    apt-get install -y python3-h2 python3-wsproto\n" % exc
    )
    sys.exit(4)

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_NO_EXTENDED_CONNECT = 3

# The errors list is for humans; after this many the JSON line would just be noise.
MAX_ERRORS_REPORTED = 20


class WsStream:
    """One WebSocket carried by one HTTP/2 stream."""

    def __init__(self, index, stream_id):
        self.index = index
        self.stream_id = stream_id
        self.status = None
        self.ws = None  # wsproto Connection, created only after a 200
        self.expected = collections.deque()  # messages sent and not yet echoed, in send order
        self.partial = []  # fragments of a text message still being received
        self.echoes_ok = 0
        self.close_code = None
        # Bytes waiting for HTTP/2 flow-control credit. WebSocket frames are a byte stream inside
        # DATA frames, so they can be split anywhere; we must never drop or reorder them.
        self.outbox = bytearray()
        self.end_pending = False  # send END_STREAM once the outbox drains
        self.local_ended = False
        self.remote_ended = False
        self.reset_code = None
        self.done = False


class Client:
    def __init__(self, args):
        self.args = args
        self.offered = [p.strip() for p in (args.protocol or "").split(",") if p.strip()]
        self.deadline = time.monotonic() + args.timeout
        self.errors = []
        self.error_count = 0
        self.backends = collections.Counter()
        self.protocols = collections.Counter()
        self.close_codes = collections.Counter()
        # How each HTTP/2 stream ended after its close handshake: a clean END_STREAM in both
        # directions is what RFC 8441 section 5 maps an orderly TCP close to; a RST_STREAM is worth seeing.
        self.stream_endings = collections.Counter()
        self.streams = {}  # stream_id -> WsStream
        self.to_open = collections.deque(range(args.streams))
        self.streams_opened = 0
        self.finished = 0
        self.tcp_connections = 0
        self.settings_seen = False
        self.connect_protocol_enabled = False
        self.goaway = False
        self.sock = None
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=config)

    # ---- bookkeeping --------------------------------------------------------------------------

    def error(self, message):
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_REPORTED:
            self.errors.append(message)

    def remaining(self):
        return self.deadline - time.monotonic()

    # ---- socket I/O ---------------------------------------------------------------------------

    def connect(self):
        self.sock = socket.create_connection((self.args.host, self.args.port), timeout=max(self.remaining(), 0.1))
        self.tcp_connections += 1
        # Small frames from many streams: Nagle would only add latency, never save anything here.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Prior knowledge h2c: the preface goes out immediately, no HTTP/1.1 Upgrade dance.
        self.conn.initiate_connection()
        self.flush_socket()

    def flush_socket(self):
        data = self.conn.data_to_send()
        if data:
            # Bounded by the overall deadline so a peer that stops reading cannot hang us.
            self.sock.settimeout(max(self.remaining(), 0.1))
            self.sock.sendall(data)

    def pump(self):
        """Wait for bytes (until the deadline), feed them to h2, handle events. False on EOF/timeout."""
        wait = self.remaining()
        if wait <= 0:
            return False
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable:
            return False
        data = self.sock.recv(65536)
        if not data:
            self.error("server closed the TCP connection")
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has already queued a GOAWAY; send it so the server logs the reason too.
            self.error("HTTP/2 protocol error from server: %s" % exc)
            self.flush_socket()
            return False
        for event in events:
            self.handle_h2_event(event)
        self.flush_socket()
        return True

    # ---- HTTP/2 ---------------------------------------------------------------------------------

    def wait_for_settings(self):
        # RFC 8441 section 3: a client MUST NOT send :protocol before it has seen the peer's
        # SETTINGS_ENABLE_CONNECT_PROTOCOL=1, so the very first server frame gates everything.
        while not self.settings_seen:
            if not self.pump():
                self.error("no SETTINGS frame from the server within %ss" % self.args.timeout)
                return False
        return True

    def open_more_streams(self):
        # Respect the server's SETTINGS_MAX_CONCURRENT_STREAMS: opening more is a protocol error
        # (the server would refuse them), so extra streams wait until earlier ones finish.
        limit = self.conn.remote_settings.max_concurrent_streams
        while self.to_open and not self.goaway and self.conn.open_outbound_streams < limit:
            index = self.to_open.popleft()
            stream_id = self.conn.get_next_available_stream_id()
            headers = [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":path", self.args.path),
                (":authority", self.args.authority or "%s:%d" % (self.args.host, self.args.port)),
                ("sec-websocket-version", "13"),
            ]
            if self.offered:
                headers.append(("sec-websocket-protocol", ", ".join(self.offered)))
            # end_stream=False: the stream stays open in both directions as the WebSocket's pipe.
            self.conn.send_headers(stream_id, headers, end_stream=False)
            self.streams[stream_id] = WsStream(index, stream_id)

    def handle_h2_event(self, event):
        if isinstance(event, h2.events.RemoteSettingsChanged):
            if not self.settings_seen:
                self.settings_seen = True
                self.connect_protocol_enabled = self.conn.remote_settings.enable_connect_protocol == 1
        elif isinstance(event, h2.events.ResponseReceived):
            self.on_response(event.stream_id, dict(event.headers))
        elif isinstance(event, h2.events.DataReceived):
            # Hand the flow-control credit back straight away: we consume data synchronously, and
            # with 200 streams sharing one 64 KiB connection window, forgetting this stalls
            # every stream after a few round trips.
            if event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.on_data(event.stream_id, event.data)
        elif isinstance(event, h2.events.WindowUpdated):
            # Stream 0 means the connection window grew: any stream may now be able to send.
            targets = self.streams.values() if event.stream_id == 0 else [self.streams.get(event.stream_id)]
            for st in list(targets):
                if st is not None:
                    self.flush_stream(st)
        elif isinstance(event, h2.events.StreamEnded):
            st = self.streams.get(event.stream_id)
            if st is not None:
                st.remote_ended = True
                if st.ws is not None and st.close_code is None:
                    # END_STREAM without a Close frame is RFC 6455's abnormal closure (1006).
                    self.error("stream %d: server ended the stream before the WebSocket close handshake" % st.stream_id)
                self.maybe_finish(st)
        elif isinstance(event, h2.events.StreamReset):
            st = self.streams.get(event.stream_id)
            if st is not None:
                st.reset_code = event.error_code
                if st.close_code is None:
                    self.error("stream %d: RST_STREAM %s before the close handshake completed" % (st.stream_id, event.error_code))
                self.finish(st, "rst:%s" % getattr(event.error_code, "name", event.error_code))
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = True
            self.error("server sent GOAWAY (%s, last stream %s)" % (event.error_code, event.last_stream_id))

    def on_response(self, stream_id, headers):
        st = self.streams.get(stream_id)
        if st is None:
            return
        st.status = headers.get(":status")
        backend = headers.get("x-backend-id")
        if backend:
            self.backends[backend] += 1
        if st.status != "200":
            self.error("stream %d: extended CONNECT answered :status %s" % (stream_id, st.status))
            # Nothing to talk to; cancel rather than wait for the error body. h2 parses a whole
            # read before we see its events, so the server's END_STREAM may already have closed
            # the stream: then there is nothing left to cancel.
            try:
                self.conn.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.StreamClosedError:
                pass
            self.finish(st, "refused:%s" % st.status)
            return
        self.streams_opened += 1
        chosen = headers.get("sec-websocket-protocol", "")
        self.protocols[chosen] += 1
        # RFC 6455 section 4.1: the server may only select one of the offered subprotocols.
        if chosen and chosen not in self.offered:
            self.error("stream %d: server selected subprotocol %r which was not offered %r" % (stream_id, chosen, self.offered))
        # RFC 6455 lets a server decline every offered subprotocol, but ws, browsers and our own
        # client all fail such a handshake, so a peer meant to catch divergence must too.
        if not chosen and self.offered:
            self.error("stream %d: server selected no subprotocol although %r was offered" % (stream_id, self.offered))
        # RFC 8441 replaces the HTTP/1.1 Upgrade handshake, so wsproto's frame layer starts OPEN;
        # the CLIENT role makes it mask every frame as RFC 6455 section 5.3 requires.
        st.ws = wsproto.connection.Connection(wsproto.connection.ConnectionType.CLIENT)
        for i in range(self.args.messages):
            # Unique per stream and message so a cross-stream mixup cannot pass as an echo.
            text = "s%d-m%d-%s" % (st.index, i, "x" * self.args.pad)
            st.expected.append(text)
            self.ws_send(st, wsproto.events.TextMessage(data=text))
        if self.args.messages == 0:
            self.ws_send(st, wsproto.events.CloseConnection(code=1000, reason="done"))

    def on_data(self, stream_id, data):
        st = self.streams.get(stream_id)
        # Node ends a stream with an empty DATA frame flagged END_STREAM; that carries no
        # WebSocket bytes and must not be fed to wsproto, which rejects input once CLOSED.
        if st is None or st.ws is None or st.done or not data:
            return
        try:
            st.ws.receive_data(data)
        except wsproto.utilities.LocalProtocolError as exc:
            self.error("stream %d: %d bytes after the WebSocket closed: %s" % (stream_id, len(data), exc))
            return
        for event in st.ws.events():
            self.handle_ws_event(st, event)

    # ---- WebSocket --------------------------------------------------------------------------------

    def handle_ws_event(self, st, event):
        if isinstance(event, wsproto.events.TextMessage):
            st.partial.append(event.data)
            if not event.message_finished:
                return
            text = "".join(st.partial)
            st.partial = []
            want = st.expected.popleft() if st.expected else None
            if text == want:
                st.echoes_ok += 1
            else:
                self.error("stream %d: expected echo %r, got %r" % (st.stream_id, want, text[:80]))
            if not st.expected:
                # All echoes are in: start the close handshake from our side with a normal close.
                self.ws_send(st, wsproto.events.CloseConnection(code=1000, reason="done"))
        elif isinstance(event, wsproto.events.BytesMessage):
            if event.message_finished:
                self.error("stream %d: unexpected binary message from an echo of text" % st.stream_id)
        elif isinstance(event, wsproto.events.Ping):
            self.ws_send(st, event.response())
        elif isinstance(event, wsproto.events.CloseConnection):
            st.close_code = event.code
            self.close_codes[str(event.code)] += 1
            if st.ws.state == wsproto.connection.ConnectionState.REMOTE_CLOSING:
                # The server closed first (e.g. 1001 while draining): answer as RFC 6455 requires,
                # but it is still a failure for this test since we did not ask for it.
                self.error("stream %d: server initiated close %s %r" % (st.stream_id, event.code, event.reason))
                self.ws_send(st, event.response())
            elif event.code != 1000:
                self.error("stream %d: close reply code %s %r, expected 1000" % (st.stream_id, event.code, event.reason))
            # The WebSocket is closed; END_STREAM is RFC 8441's equivalent of the TCP FIN.
            st.end_pending = True
            self.flush_stream(st)
            self.maybe_finish(st)

    def ws_send(self, st, event):
        try:
            st.outbox += st.ws.send(event)
        except wsproto.utilities.LocalProtocolError as exc:
            self.error("stream %d: cannot send %s: %s" % (st.stream_id, type(event).__name__, exc))
            return
        self.flush_stream(st)

    def flush_stream(self, st):
        """Send as much of the outbox as HTTP/2 flow control allows right now."""
        if st.done or st.local_ended:
            return
        try:
            while st.outbox:
                window = self.conn.local_flow_control_window(st.stream_id)
                size = min(window, self.conn.max_outbound_frame_size, len(st.outbox))
                if size <= 0:
                    return  # wait for a WINDOW_UPDATE; handle_h2_event calls us again
                self.conn.send_data(st.stream_id, bytes(st.outbox[:size]))
                del st.outbox[:size]
            if st.end_pending:
                self.conn.end_stream(st.stream_id)
                st.local_ended = True
        except h2.exceptions.StreamClosedError:
            # The server reset the stream; the StreamReset event records why.
            st.outbox.clear()

    def maybe_finish(self, st):
        if st.local_ended and st.remote_ended:
            self.finish(st, "end_stream")

    def finish(self, st, how):
        if st.done:
            return
        st.done = True
        self.finished += 1
        self.stream_endings[how] += 1

    # ---- main -----------------------------------------------------------------------------------

    def run(self):
        try:
            self.connect()
        except OSError as exc:
            self.error("cannot connect to %s:%s: %s" % (self.args.host, self.args.port, exc))
            return EXIT_MISMATCH
        try:
            if not self.wait_for_settings():
                return EXIT_MISMATCH
            if not self.connect_protocol_enabled:
                self.error(
                    "server SETTINGS lack SETTINGS_ENABLE_CONNECT_PROTOCOL=1 (RFC 8441 section 3): "
                    "it cannot carry WebSockets over HTTP/2"
                )
                return EXIT_NO_EXTENDED_CONNECT
            while self.finished < self.args.streams:
                self.open_more_streams()
                self.flush_socket()
                if self.goaway and not any(not s.done for s in self.streams.values()):
                    break
                if not self.pump():
                    if self.remaining() <= 0:
                        pending = [s for s in self.streams.values() if not s.done]
                        self.error(
                            "timeout after %ss: %d streams unfinished, %d never opened"
                            % (self.args.timeout, len(pending), len(self.to_open))
                        )
                    break
            # Be a polite peer: tell the server we are done with the connection.
            self.conn.close_connection()
            self.flush_socket()
        except (OSError, h2.exceptions.H2Error) as exc:
            self.error("%s: %s" % (type(exc).__name__, exc))
        finally:
            self.sock.close()
        return EXIT_OK if self.succeeded() else EXIT_MISMATCH

    def succeeded(self):
        n, m = self.args.streams, self.args.messages
        return (
            self.error_count == 0
            and self.streams_opened == n
            and sum(s.echoes_ok for s in self.streams.values()) == n * m
            and self.close_codes == collections.Counter({"1000": n})
            and self.tcp_connections == 1
        )

    def advertised_max_streams(self):
        # h2 stands in 2**32+1 for "the server set no limit"; null says that more honestly.
        value = self.conn.remote_settings.max_concurrent_streams
        return value if self.settings_seen and value < 2**31 else None

    def report(self):
        if self.error_count > len(self.errors):
            self.errors.append("... and %d more errors" % (self.error_count - len(self.errors)))
        # More than one negotiated value would itself be a bug; report it rather than pick one.
        protocol = next(iter(self.protocols)) if len(self.protocols) == 1 else ""
        if len(self.protocols) > 1:
            self.errors.append("streams negotiated different subprotocols: %s" % dict(self.protocols))
        return {
            "streams_opened": self.streams_opened,
            "echoes_ok": sum(s.echoes_ok for s in self.streams.values()),
            "echoes_expected": self.args.streams * self.args.messages,
            "backends": dict(self.backends),
            "protocol": protocol,
            "close_codes": dict(self.close_codes),
            "tcp_connections": self.tcp_connections,
            "errors": self.errors,
            "stream_endings": dict(self.stream_endings),
            "server_max_concurrent_streams": self.advertised_max_streams(),
        }


def parse_args(argv):
    parser = argparse.ArgumentParser(description="Independent RFC 8441 WebSocket-over-h2c echo client (hyper-h2 + wsproto).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--authority", default=None, help=":authority (default host:port)")
    parser.add_argument("--path", default="/echo")
    parser.add_argument("--streams", type=int, default=1, help="WebSockets to open, all on ONE TCP connection")
    parser.add_argument("--messages", type=int, default=1, help="text messages per WebSocket")
    parser.add_argument("--pad", type=int, default=0, help="extra bytes per message (exercises flow control)")
    parser.add_argument("--protocol", default="", help="subprotocol(s) to offer, comma-separated (default: none)")
    parser.add_argument("--timeout", type=float, default=30.0, help="overall bound in seconds")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.messages < 0 or args.pad < 0 or args.timeout <= 0:
        parser.error("--streams must be >= 1, --messages and --pad >= 0, --timeout > 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    client = Client(args)
    code = client.run()
    report = client.report()
    for message in report["errors"]:
        sys.stderr.write("rfc8441_client.py: %s\n" % message)
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
