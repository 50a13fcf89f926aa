#!/usr/bin/python3
"""What a caller can make the gateway hold before any authorization: raw HTTP/2 clients (python3-h2,
and Debian's h2load for load) against the contacts-gateway binary with --memory-quota 32 MiB.

Checked, each exactly: the largest request a caller needs is read; a request above
--max-request-bytes ends RESOURCE_EXHAUSTED naming both sizes; one 400 MB request is reset
(ENHANCE_YOUR_CALM) long before it is all sent; metadata above --max-metadata-bytes is refused
whether or not the client acknowledged the server's SETTINGS; a ping flood gets GOAWAY
too_many_pings; 1,000 streams opened and dropped leave nothing behind, and streams held open end
with their connection at --max-connection-age; 50 concurrent 10 MB requests (h2load, 50
connections) are all refused. Throughout, the gateway's peak RSS (VmHWM) stays under its RSS at
start + the quota + 64 MiB, and afterwards a call still reaches the upstream. About 7 s.

  http2_limits_test.py --gateway BIN --kore-sim BIN
"""
import argparse
import os
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

QUOTA = 32 << 20
SLACK = 64 << 20
PATH = "/contacts.v1.ContactService/StreamContacts"
failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def start(args, ready):
    """A child process; returns (process, port) once a line of its stdout matches `ready`."""
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        out.seek(0)
        m = re.search(ready, out.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    out.seek(0)
    sys.exit(f"{args[0]} did not start: {out.read()}")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


def varint(value):
    out = b""
    while True:
        out += bytes([value & 0x7F | (0x80 if value > 0x7F else 0)])
        value >>= 7
        if not value:
            return out


def field(number, text):  # a length-delimited protobuf field
    data = text.encode() if isinstance(text, str) else text
    return bytes([number << 3 | 2]) + varint(len(data)) + data


def request(list_id="cl-sim-50"):
    return field(1, "st-h2") + field(2, list_id) + field(3, "acct-h2")


class Conn:
    """One HTTP/2 connection to the gateway, speaking as a gRPC client would (or would not)."""

    def __init__(self, port, ack_settings=True):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.events = []
        self.h2.initiate_connection()
        self.flush()
        if ack_settings:  # read the server's SETTINGS and acknowledge them before any stream
            self.pump(until=lambda: any(isinstance(e, h2.events.RemoteSettingsChanged)
                                        for e in self.events))

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                self.events.append("EOF")  # the server closed the connection while we wrote

    def headers(self, extra=()):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":path", PATH),
                                   (":authority", "gateway"), ("content-type", "application/grpc"),
                                   ("te", "trailers")] + list(extra))
        return sid

    def message(self, sid, body):
        """Sends one gRPC message on `sid`, within the frame size and the flow-control window."""
        data = struct.pack(">BI", 0, len(body)) + body
        while data:
            n = min(len(data), self.h2.max_outbound_frame_size,
                    self.h2.local_flow_control_window(sid))
            if n <= 0:
                if not self.pump(lambda: self.ended(sid) or
                                 self.h2.local_flow_control_window(sid) > 0):
                    return
                if self.ended(sid):
                    return
                continue
            self.h2.send_data(sid, data[:n], end_stream=n == len(data))
            self.flush()
            data = data[n:]

    def pump(self, until, timeout=10.0):
        """Reads until `until()` holds, the connection ends or `timeout` passes; True if it held."""
        deadline = time.time() + timeout
        while not until():
            left = deadline - time.time()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return False
            data = self.sock.recv(1 << 16)
            if not data:
                self.events.append("EOF")
                return until()
            try:
                self.events.extend(self.h2.receive_data(data))
            except h2.exceptions.StreamClosedError:
                pass  # frames of a stream the server reset; the reset is already recorded
            except h2.exceptions.ProtocolError:
                pass  # frames after the server's GOAWAY, which is already recorded
            self.flush()
        return True

    def trailers(self, sid):
        """The trailers of `sid`, or its headers when they carry grpc-status (Trailers-Only)."""
        for e in self.events:
            if (isinstance(e, (h2.events.TrailersReceived, h2.events.ResponseReceived)) and
                    e.stream_id == sid and "grpc-status" in dict(e.headers)):
                return dict(e.headers)
        return None

    def reset(self, sid):
        for e in self.events:
            if isinstance(e, h2.events.StreamReset) and e.stream_id == sid:
                return e.error_code
        return None

    def ended(self, sid):
        return self.trailers(sid) is not None or self.reset(sid) is not None or "EOF" in self.events

    def close(self):
        self.sock.close()


def grpc_status(conn, sid):
    conn.pump(lambda: conn.ended(sid))
    t = conn.trailers(sid)
    return (int(t["grpc-status"]), t.get("grpc-message", "")) if t else (None, conn.reset(sid))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--kore-sim", required=True)
    parser.add_argument("--h2load", default="h2load")
    args = parser.parse_args()

    sim, sim_port = start([args.kore_sim, "--listen", "127.0.0.1:0", "--quiet"],
                          r"listening on [\d.]+:(\d+)")
    gw, port = start([args.gateway, "--listen", "127.0.0.1:0", "--admin-listen=",
                      "--upstream", f"http://127.0.0.1:{sim_port}", "--upstream-allow-plain-http",
                      "--rate-limit", "0", "--memory-quota", str(QUOTA), "--max-request-bytes",
                      "4096", "--max-metadata-bytes", "8192", "--keepalive-min-ping-interval",
                      "10s", "--max-connection-age", "3s", "--max-connection-age-grace", "1s"],
                     r"listening on [\d.]+:(\d+)")
    try:
        start_rss = rss_kib(gw.pid, "VmRSS") << 10
        bound = start_rss + QUOTA + SLACK
        print(f"gateway RSS at start {start_rss >> 20} MiB; bound {bound >> 20} MiB", flush=True)

        def within_bound(after):
            peak = rss_kib(gw.pid, "VmHWM") << 10
            check(f"peak RSS {peak >> 20} MiB within {bound >> 20} MiB after {after}",
                  peak <= bound, f"{peak} > {bound}")

        # The largest request a caller may need (ids of 128 characters, a resume token longer than
        # any the gateway issues) fits in --max-request-bytes: it is read and judged on its fields.
        c = Conn(port)
        sid = c.headers([("auth", "made-up-jwt"), ("iid", "cs-none")])
        largest = (field(1, "s" * 128) + field(2, "l" * 128) + field(3, "a" * 128) +
                   field(7, "A" * 1500))
        c.message(sid, largest)
        code, message = grpc_status(c, sid)
        check(f"a {len(largest)}-byte request is read: INVALID_ARGUMENT for its resume_token",
              code == 3 and "resume_token" in message, f"{code} {message}")
        c.close()

        # A request message above --max-request-bytes.
        c = Conn(port)
        sid = c.headers()
        c.message(sid, b"\0" * 65536)
        code, message = grpc_status(c, sid)
        check("64 KiB request: RESOURCE_EXHAUSTED naming both sizes",
              code == 8 and message == "Received message larger than max (65536 vs. 4096)",
              f"{code} {message}")
        c.close()

        # One 400 MB request, sent as fast as the server's flow control allows.
        c = Conn(port)
        sid = c.headers()
        total, sent = 400_000_000, 0
        header = struct.pack(">BI", 0, total)
        chunk = b"\0" * 16384
        while sent < total + 5 and not c.ended(sid):
            window = min(c.h2.local_flow_control_window(sid), c.h2.max_outbound_frame_size)
            if window <= 0:
                if not c.pump(lambda: c.ended(sid) or c.h2.local_flow_control_window(sid) > 0):
                    break
                continue
            n = min(window, total + 5 - sent)
            data = (header + chunk)[:n] if sent == 0 else chunk[:n]
            try:
                c.h2.send_data(sid, data)
                c.flush()
            except (h2.exceptions.StreamClosedError, BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
            c.pump(lambda: True, timeout=0)  # take in a reset without waiting
        c.pump(lambda: c.ended(sid))
        check("400 MB request: reset with ENHANCE_YOUR_CALM",
              c.reset(sid) == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, c.events[-3:])
        check(f"400 MB request: refused after {sent >> 20} MiB, under 2 x the quota",
              sent < 2 * QUOTA, sent)
        c.close()
        within_bound("a 400 MB request")

        # Metadata above --max-metadata-bytes: gRPC refuses it once the client acknowledged the
        # server's SETTINGS; before that, the gateway does (gRPC 1.51 applies its limit only then).
        c = Conn(port)
        sid = c.headers([("x-padding", "p" * 9000)])
        c.message(sid, request())
        c.pump(lambda: c.ended(sid))
        check("9000-byte header after SETTINGS ack: the connection is closed, nothing answered",
              "EOF" in c.events and c.trailers(sid) is None and not any(
                  isinstance(e, h2.events.ResponseReceived) for e in c.events), c.events[-3:])
        c.close()
        c = Conn(port, ack_settings=False)
        sid = c.headers([("x-padding", "p" * 9000)])
        c.message(sid, request())
        code, message = grpc_status(c, sid)
        check("9000-byte header before SETTINGS ack: RESOURCE_EXHAUSTED from the gateway",
              code == 8 and "more than the 8192 allowed" in message, f"{code} {message}")
        c.close()

        # A ping flood.
        c = Conn(port)
        for i in range(20):
            c.h2.ping(struct.pack(">Q", i))
        c.flush()
        c.pump(lambda: any(isinstance(e, h2.events.ConnectionTerminated) for e in c.events))
        goaway = [e for e in c.events if isinstance(e, h2.events.ConnectionTerminated)]
        check("ping flood: GOAWAY ENHANCE_YOUR_CALM too_many_pings",
              goaway and goaway[0].error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
              and goaway[0].additional_data == b"too_many_pings", goaway)
        c.close()

        # 1,000 streams opened (headers, no message) on 10 connections, then dropped.
        conns = []
        for _ in range(10):
            c = Conn(port)
            for _ in range(100):
                c.headers()
            c.flush()
            conns.append(c)
        for c in conns:
            c.pump(lambda: False, timeout=0.2)  # let the server take them in
        refused = sum(1 for c in conns for e in c.events if isinstance(e, h2.events.StreamReset))
        check("1,000 abandoned streams: none refused while within 100 per connection",
              refused == 0, refused)
        for c in conns:
            c.close()
        within_bound("1,000 abandoned streams")

        # Streams opened and held without a message: the connection ends at --max-connection-age
        # (3 s here, +-10%) plus its grace (1 s), whatever its streams wait for.
        c = Conn(port)
        began = time.time()
        for _ in range(100):
            c.headers()
        c.flush()
        c.pump(lambda: "EOF" in c.events, timeout=15)
        check(f"100 held streams: closed with their connection after {time.time() - began:.1f} s",
              "EOF" in c.events and time.time() - began < 10, c.events[-3:])
        c.close()

        # 50 concurrent 10 MB requests, one per connection (h2load).
        with tempfile.NamedTemporaryFile(suffix=".grpc") as body:
            body.write(struct.pack(">BI", 0, 10_000_000 - 5) + b"\0" * (10_000_000 - 5))
            body.flush()
            load = subprocess.run(
                [args.h2load, "-n", "50", "-c", "50", "-m", "1", "-d", body.name,
                 "-H", "content-type: application/grpc", "-H", "te: trailers",
                 f"http://127.0.0.1:{port}{PATH}"], capture_output=True, text=True, timeout=120)
        # Each ends reset (stream or connection) or, when whole before the quota caught it, with
        # RESOURCE_EXHAUSTED in trailers after HTTP 200: h2load counts those as succeeded.
        summary = re.search(r"requests: 50 total, 50 started, \d+ done, (\d+) succeeded, "
                            r"(\d+) failed, \d+ errored, 0 timeout", load.stdout)
        check("h2load: 50 requests of 10 MB, every one answered or reset",
              summary is not None and sum(map(int, summary.groups())) == 50, load.stdout[-600:])
        check("h2load: no HTTP error status", "0 3xx, 0 4xx, 0 5xx" in load.stdout, load.stdout)
        within_bound("50 concurrent 10 MB requests")

        # The gateway still streams a list exactly.
        c = Conn(port)
        sid = c.headers([("auth", "made-up-jwt"), ("iid", "cs-none")])
        c.message(sid, request())
        code, message = grpc_status(c, sid)
        check("afterwards a call still reaches the upstream (kore-sim: 401 for a made-up JWT)",
              code == 16 and "upstream answered HTTP 401" in message, f"{code} {message}")
        c.close()
    finally:
        gw.terminate()
        sim.terminate()
        gw.wait(10)
        sim.wait(10)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed: {failures}")
    print("http2 limits: all checks passed")


if __name__ == "__main__":
    main()
