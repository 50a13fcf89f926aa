#!/usr/bin/python3
"""StreamContacts over raw HTTP/2 (python3-h2), as no generated stub would send it: broken gRPC
framing, a second request message, a compressed flag without an encoding. Every case must end with a
status that says what is wrong, never OK and never "stream_id is required".

Usage: raw_http2_test.py --kore-sim PATH --gateway PATH
"""
import argparse
import gzip
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import h2.config
import h2.connection
import h2.events

ARGS = None
PATH = "/contacts.v1.ContactService/StreamContacts"


def wait_for_port(path, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with open(path) as f:
                m = re.search(r"listening on [^ ]*:(\d+)", f.read())
                if m:
                    return int(m.group(1))
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no ready line in {path}")


def field(number, value):
    """A length-delimited protobuf field (numbers below 16)."""
    data = value.encode()
    return bytes([number << 3 | 2, len(data)]) + data


def request(list_id="cl-sim-500"):
    """A StreamContactsRequest: stream_id=1, contact_list_id=2, account_id=3."""
    return field(1, "st-raw") + field(2, list_id) + field(3, "acct-raw")


def frame(message, compressed=False, length=None):
    """A gRPC length-prefixed message."""
    return struct.pack(">BI", 1 if compressed else 0,
                       len(message) if length is None else length) + message


class Call:
    """One call on a fresh HTTP/2 connection: what the gateway answered."""

    def __init__(self, port, body, extra_headers=(), end_stream=True, timeout=10):
        self.headers, self.trailers, self.data = {}, {}, b""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        headers = [(":method", "POST"), (":scheme", "http"), (":path", PATH),
                   (":authority", f"127.0.0.1:{port}"), ("content-type", "application/grpc"),
                   ("te", "trailers")] + list(extra_headers)
        conn.send_headers(1, headers, end_stream=not body and end_stream)
        if body:
            conn.send_data(1, body, end_stream=end_stream)
        sock.sendall(conn.data_to_send())
        done = False
        end = time.time() + timeout
        while not done and time.time() < end:
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived):
                    self.headers = dict((k.decode(), v.decode()) for k, v in event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    self.data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    self.trailers = dict((k.decode(), v.decode()) for k, v in event.headers)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            sock.sendall(conn.data_to_send())
        sock.close()
        status = self.trailers.get("grpc-status", self.headers.get("grpc-status"))
        self.code = int(status) if status is not None else None
        self.message = self.trailers.get("grpc-message", self.headers.get("grpc-message", ""))


INVALID_ARGUMENT, RESOURCE_EXHAUSTED, OK = 3, 8, 0


class RawHttp2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp()
        sim_out = os.path.join(cls.work, "sim.out")
        with open(sim_out, "w") as out:
            cls.sim = subprocess.Popen(
                [ARGS.kore_sim, "--listen", "127.0.0.1:0", "--quiet", "--no-auth"],
                stdout=out, stderr=subprocess.DEVNULL)
        sim_port = wait_for_port(sim_out)
        gw_out = os.path.join(cls.work, "gw.out")
        with open(gw_out, "w") as out:
            cls.gateway = subprocess.Popen(
                [ARGS.gateway, "--listen", "127.0.0.1:0", "--admin-listen", "", "--rate-limit",
                 "0", "--upstream", f"http://127.0.0.1:{sim_port}", "--upstream-allow-plain-http"],
                stdout=out, stderr=subprocess.DEVNULL)
        cls.port = wait_for_port(gw_out)

    @classmethod
    def tearDownClass(cls):
        for p in (cls.gateway, cls.sim):
            p.terminate()
            p.wait(10)

    def refused_as_invalid(self, call, says):
        self.assertEqual(call.code, INVALID_ARGUMENT, call.message)
        self.assertIn(says, call.message)
        self.assertNotIn("stream_id is required", call.message)
        self.assertIn("grpc-status-details-bin", call.trailers)

    def test_a_good_request_streams_the_list(self):
        call = Call(self.port, frame(request()), extra_headers=[("auth", "j"), ("iid", "a")])
        self.assertEqual(call.code, OK, call.message)
        self.assertGreater(len(call.data), 500 * 20)  # 500 contacts went out

    def test_no_message_at_all_is_refused(self):
        self.refused_as_invalid(Call(self.port, b""), "no complete contacts.v1.StreamContactsRequest")

    def test_a_truncated_frame_is_refused(self):
        body = frame(request(), length=len(request()) + 50)  # the prefix promises 50 more bytes
        self.refused_as_invalid(Call(self.port, body), "no complete contacts.v1.StreamContactsRequest")

    def test_garbage_is_refused_as_no_request(self):
        self.refused_as_invalid(Call(self.port, frame(b"\xff\xfe garbage \x00\x01")),
                                "not a contacts.v1.StreamContactsRequest")

    def test_a_length_prefix_of_4_gb_is_refused_before_reading_it(self):
        call = Call(self.port, frame(b"", length=0xFFFFFFFF) + b"x" * 100)
        self.assertIn(call.code, (INVALID_ARGUMENT, RESOURCE_EXHAUSTED), call.message)
        self.assertNotIn("stream_id is required", call.message)

    def test_a_second_request_message_is_refused(self):
        call = Call(self.port, frame(request("cl-sim-1000000")) + frame(request()),
                    extra_headers=[("auth", "j"), ("iid", "a")])
        self.refused_as_invalid(call, "one request message")

    def test_a_compressed_message_without_an_encoding_is_refused(self):
        call = Call(self.port, frame(request(), compressed=True),
                    extra_headers=[("auth", "j"), ("iid", "a")])
        self.refused_as_invalid(call, "flagged compressed")

    def test_a_gzip_message_with_its_encoding_is_served(self):
        call = Call(self.port, frame(gzip.compress(request()), compressed=True),
                    extra_headers=[("grpc-encoding", "gzip"), ("auth", "j"), ("iid", "a")])
        self.assertEqual(call.code, OK, call.message)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kore-sim", required=True)
    parser.add_argument("--gateway", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)
