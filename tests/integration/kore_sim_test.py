#!/usr/bin/python3
"""End-to-end test of the kore-sim binary (tools/kore-sim), standard library only.

Starts the real binary on port 0, reads the port from its ready line, mints HS256 JWTs with its own
hmac/hashlib/base64 code (independent of the C++ implementation) and checks paging, auth, rate
limiting (with a scaled window), page-size caps, every fault kind, the statistics (per account too),
the request log and list mutations.

    /usr/bin/python3 tests/integration/kore_sim_test.py --kore-sim build/tools/kore-sim/kore-sim
"""

import argparse
import base64
import datetime
import email.utils
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

KORE_SIM = None  # set from --kore-sim
APP_ID, SECRET, ACCOUNT = "cs-demo", "demo-secret", "acct-1"
READY = re.compile(r"^kore-sim listening on (\S+):(\d+) \((https?)\)$")
RATE_LIMIT_MSG = ("You've exceeded the per-minute rate limit. "
                  "Please wait for sometime before retrying.")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def mint_jwt(app_id=APP_ID, secret=SECRET, **claims):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "kore-sim-test", "appId": app_id, **claims}).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = b64url(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def fnv1a32(text):
    h = 2166136261
    for byte in text.encode():
        h = ((h ^ byte) * 16777619) & 0xFFFFFFFF
    return h


def contact_id(list_id, index):
    return f"c-{fnv1a32(list_id):08x}-{index:08d}"


def contacts_path(list_id, stream="st-test"):
    return (f"/campaign/api/v2/public/{stream}/campaign/contactList/"
            f"{urllib.parse.quote(list_id, safe='')}/getAllContacts")


class Sim:
    """One running kore-sim process."""

    def __init__(self, *flags):
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([KORE_SIM, *flags], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        killer = threading.Timer(10, self.proc.kill)  # never hang on a missing ready line
        killer.start()
        line = self.proc.stdout.readline().rstrip("\n")
        killer.cancel()
        match = READY.match(line)
        if not match:
            self.stop()
            raise RuntimeError(f"kore-sim did not start; first line: {line!r}")
        self.host, self.port, self.scheme = match.group(1), int(match.group(2)), match.group(3)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()

    def connection(self):
        if self.scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(self.host, self.port, timeout=10, context=context)
        return http.client.HTTPConnection(self.host, self.port, timeout=10)

    def request(self, method, path, headers=None, conn=None):
        """(status, headers dict with lower-case names, body bytes)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            body = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, body
        finally:
            if own:
                conn.close()

    def contacts(self, list_id, skip=None, limit=None, token=None, iid=APP_ID, account=ACCOUNT,
                 header_account=None, conn=None, extra_query=None, extra_headers=None):
        query = {"accountId": account}
        if skip is not None:
            query["skip"] = skip
        if limit is not None:
            query["limit"] = limit
        query.update(extra_query or {})
        headers = {"auth": mint_jwt() if token is None else token, "iid": iid,
                   "accountId": account if header_account is None else header_account}
        if token == "":
            del headers["auth"]
        headers.update(extra_headers or {})
        return self.request("GET", contacts_path(list_id) + "?" + urllib.parse.urlencode(query),
                            headers, conn)

    def control(self, method, path):
        status, _, body = self.request(method, path)
        return status, body

    def control_json(self, method, path):
        status, body = self.control(method, path)
        if status != 200:
            raise AssertionError(f"{method} {path}: {status} {body!r}")
        return json.loads(body)

    def raw_exchange(self, path, headers):
        """Sends one request on a plain socket and returns every byte until the server closes."""
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        with socket.create_connection((self.host, self.port), timeout=10) as sock:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)


def page_data(test, status, body):
    test.assertEqual(status, 200, body)
    document = json.loads(body)
    test.assertEqual(document["status"], "success")
    test.assertEqual(document["message"], "Contacts retrieved successfully")
    return document["data"]


def error_of(body):
    return json.loads(body)["errors"][0]


class KoreSimTest(unittest.TestCase):
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim("--quiet", "--list", "small=3")

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.assertEqual(self.sim.control("POST", "/_sim/reset")[0], 200)

    def add_fault(self, spec):
        status, body = self.sim.control("POST", "/_sim/faults?" + spec)
        self.assertEqual(status, 200, body)

    # --- paging ---------------------------------------------------------------------------------

    def test_pages_through_cl_sim_120_in_order(self):
        seen = []
        expectations = [(0, 50, True), (50, 50, True), (100, 20, False)]
        conn = self.sim.connection()  # one keep-alive connection for all pages
        for skip, count, has_more in expectations:
            data = page_data(self, *self.sim.contacts("cl-sim-120", skip, 50, conn=conn)[::2])
            self.assertEqual(len(data["results"]), count)
            self.assertEqual(data["skip"], skip)
            self.assertEqual(data["limit"], 50)
            self.assertIs(data["hasMore"], has_more)
            self.assertEqual(data["totalResults"], 120)
            self.assertEqual(data["totalPages"], 3)
            seen += [c["_id"] for c in data["results"]]
        conn.close()
        self.assertEqual(seen, [contact_id("cl-sim-120", i) for i in range(120)])

    def test_contact_fields_are_deterministic(self):
        data = page_data(self, *self.sim.contacts("cl-sim-120", 42, 1)[::2])
        contact = data["results"][0]
        created = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc) + \
            datetime.timedelta(seconds=42)
        self.assertEqual(contact["_id"], contact_id("cl-sim-120", 42))
        self.assertEqual(contact["createdAt"], created.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        self.assertEqual(contact["updatedAt"],
                         (created + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"))
        self.assertRegex(contact["phoneNumber"], r"^\+1[0-9]{10}$")
        again = page_data(self, *self.sim.contacts("cl-sim-120", 42, 1)[::2])
        self.assertEqual(again["results"][0], contact)

    def test_default_limit(self):
        data = page_data(self, *self.sim.contacts("cl-sim-3000")[::2])
        self.assertEqual((data["limit"], len(data["results"])), (50, 50))

    # --- page-size caps -------------------------------------------------------------------------

    def test_capped_page_answers_as_a_full_page_of_the_served_size(self):
        # --max-limit 1000 (the default): a larger limit gets exactly the body limit=1000 gets.
        for skip, count, has_more in ((0, 1000, True), (1000, 1000, True), (2000, 500, False)):
            status, _, body = self.sim.contacts("cl-sim-2500", skip, 5000)
            self.assertEqual(body, self.sim.contacts("cl-sim-2500", skip, 1000)[2])
            data = page_data(self, status, body)
            self.assertEqual([c["_id"] for c in data["results"]],
                             [contact_id("cl-sim-2500", i) for i in range(skip, skip + count)])
            self.assertEqual((data["skip"], data["limit"], data["hasMore"], data["totalResults"],
                              data["totalPages"]), (skip, 1000, has_more, 2500, 3))
        # A capped page that ends the list says so.
        data = page_data(self, *self.sim.contacts("cl-sim-2000", 1000, 1001)[::2])
        self.assertEqual((len(data["results"]), data["limit"], data["hasMore"]), (1000, 1000, False))

    def test_config_steers_the_caps_and_reset_restores_them(self):
        self.assertEqual(self.sim.control_json("GET", "/_sim/config"),
                         {"default_limit": 50, "max_limit": 1000, "reject_limit_above": 0})
        self.assertEqual(self.sim.control_json("POST", "/_sim/config?reject_limit_above=100"),
                         {"default_limit": 50, "max_limit": 1000, "reject_limit_above": 100})
        data = page_data(self, *self.sim.contacts("cl-sim-300", 0, 100)[::2])
        self.assertEqual((len(data["results"]), data["limit"]), (100, 100))
        self.assertEqual(len(page_data(self, *self.sim.contacts("cl-sim-300")[::2])["results"]), 50)
        for limit in (101, 5000):
            status, _, body = self.sim.contacts("cl-sim-300", 0, limit)
            self.assertEqual((status, json.loads(body)),
                             (400, {"errors": [{"msg": "limit must be between 1 and 100",
                                                "code": 400}]}))
        # Both at once: refused above 100, served 30 up to it.
        self.assertEqual(self.sim.control_json("POST",
                                               "/_sim/config?max_limit=30&reject_limit_above=100"),
                         {"default_limit": 50, "max_limit": 30, "reject_limit_above": 100})
        data = page_data(self, *self.sim.contacts("cl-sim-300", 30, 100)[::2])
        self.assertEqual([c["_id"] for c in data["results"]],
                         [contact_id("cl-sim-300", i) for i in range(30, 60)])
        self.assertEqual((data["limit"], data["hasMore"], data["totalPages"]), (30, True, 10))
        self.assertEqual(self.sim.contacts("cl-sim-300", 0, 101)[0], 400)
        self.assertEqual(self.sim.control_json("POST", "/_sim/config?reject_limit_above=0")
                         ["reject_limit_above"], 0)
        self.assertEqual(len(page_data(self, *self.sim.contacts("cl-sim-300", 0, 101)[::2])
                             ["results"]), 30)
        stats = self.sim.control_json("GET", "/_sim/stats")
        self.assertEqual(stats["by_status"], {"200": 4, "400": 3})
        self.assertEqual(self.sim.control("POST", "/_sim/reset")[0], 200)
        self.assertEqual(self.sim.control_json("GET", "/_sim/config"),
                         {"default_limit": 50, "max_limit": 1000, "reject_limit_above": 0})

    def test_invalid_config_is_400_and_changes_nothing(self):
        for query in ("", "?max_limit=0", "?max_limit=x", "?reject_limit_above=-1",
                      "?max_limit=10&bogus=1"):
            status, body = self.sim.control("POST", "/_sim/config" + query)
            self.assertEqual((status, error_of(body)["code"]), (400, 400), query)
        self.assertEqual(self.sim.control_json("GET", "/_sim/config")["max_limit"], 1000)
        self.assertEqual(self.sim.control("DELETE", "/_sim/config")[0], 405)

    def test_configured_list_and_skip_past_the_end(self):
        data = page_data(self, *self.sim.contacts("small", 0, 10)[::2])
        self.assertEqual([c["_id"] for c in data["results"]],
                         [contact_id("small", i) for i in range(3)])
        data = page_data(self, *self.sim.contacts("small", 10, 10)[::2])
        self.assertEqual((data["results"], data["hasMore"], data["totalResults"]), ([], False, 3))

    def test_bad_paging_parameters_are_400(self):
        for query in ({"skip": "-1"}, {"skip": "x"}, {"limit": "1.5"}):
            status, _, body = self.sim.contacts("cl-sim-10", extra_query=query)
            self.assertEqual(status, 400, query)
            self.assertEqual(error_of(body)["code"], 400)

    # --- request checks -------------------------------------------------------------------------

    def test_rejects_missing_or_wrong_jwt(self):
        now = int(time.time())
        cases = {
            "missing": "",
            "garbage": "not-a-jwt",
            "wrong secret": mint_jwt(secret="wrong"),
            "unknown app": mint_jwt(app_id="other-app"),
        }
        for name, token in cases.items():
            status, _, body = self.sim.contacts("cl-sim-10", token=token)
            self.assertEqual(status, 401, name)
            self.assertEqual(error_of(body), {"msg": "Invalid JWT token", "code": 4002}, name)
        status, _, body = self.sim.contacts("cl-sim-10", token=mint_jwt(exp=now - 10))
        self.assertEqual((status, error_of(body)["msg"]), (401, "JWT expired"))
        status, _, _ = self.sim.contacts("cl-sim-10", token=mint_jwt(exp=now + 60, iat=now))
        self.assertEqual(status, 200)
        status, _, _ = self.sim.contacts("cl-sim-10", iid="someone-else")
        self.assertEqual(status, 401)

    def test_account_id_must_match_header(self):
        status, _, body = self.sim.contacts("cl-sim-10", header_account="acct-2")
        self.assertEqual(status, 400)
        self.assertEqual(error_of(body)["msg"], "accountId header and query parameter differ")

    def test_unknown_list_and_path_are_404(self):
        status, _, body = self.sim.contacts("cl-unknown")
        self.assertEqual((status, error_of(body)),
                         (404, {"msg": "Contact list not found", "code": 404}))
        status, _, body = self.sim.request("GET", "/campaign/api/v2/public/st/nothing")
        self.assertEqual((status, error_of(body)["code"]), (404, 404))

    def test_wrong_method_is_405(self):
        status, headers, _ = self.sim.request("POST", contacts_path("cl-sim-10") + "?accountId=a")
        self.assertEqual((status, headers.get("allow")), (405, "GET"))

    # --- faults ---------------------------------------------------------------------------------

    def test_fault_status_with_count_and_retry_after(self):
        self.add_fault("kind=status&code=503&count=2&retry_after=7")
        for _ in range(2):
            status, headers, body = self.sim.contacts("cl-sim-10")
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("retry-after"), "7")
            self.assertEqual(error_of(body), {"msg": "Simulated upstream error", "code": 503})
        self.assertEqual(self.sim.contacts("cl-sim-10")[0], 200)

    def test_fault_status_retry_after_date_after_and_filters(self):
        self.add_fault("kind=status&code=500&after=1&list=cl-sim-10&skip=5&retry_after=30"
                       "&retry_after_date=1")
        self.assertEqual(self.sim.contacts("cl-sim-10", 5, 5)[0], 200)  # let through (after=1)
        self.assertEqual(self.sim.contacts("cl-sim-11", 5, 5)[0], 200)  # other list
        self.assertEqual(self.sim.contacts("cl-sim-10", 0, 5)[0], 200)  # other skip
        status, headers, _ = self.sim.contacts("cl-sim-10", 5, 5)
        self.assertEqual(status, 500)
        when = email.utils.parsedate_to_datetime(headers["retry-after"])
        delta = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
        self.assertTrue(20 <= delta <= 31, delta)

    def test_fault_latency(self):
        self.add_fault("kind=latency&ms=300")
        start = time.monotonic()
        data = page_data(self, *self.sim.contacts("cl-sim-10")[::2])
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        self.assertEqual(len(data["results"]), 10)

    def test_fault_reset_sends_half_the_body_then_closes(self):
        self.add_fault("kind=reset")
        query = urllib.parse.urlencode({"accountId": ACCOUNT, "limit": 100})
        raw = self.sim.raw_exchange(contacts_path("cl-sim-500") + "?" + query,
                                    {"auth": mint_jwt(), "iid": APP_ID, "accountId": ACCOUNT})
        head, _, body = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        self.assertGreater(length, 1000)
        self.assertLess(len(body), length)
        self.assertGreater(len(body), 0)
        # The next request is served normally.
        self.assertEqual(self.sim.contacts("cl-sim-500")[0], 200)

    def test_fault_truncate_is_complete_http_with_cut_json(self):
        self.add_fault("kind=truncate")
        status, headers, body = self.sim.contacts("cl-sim-100")
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["content-length"]), len(body))
        self.assertTrue(body.startswith(b'{"status":"success"'))
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_fault_malformed(self):
        self.add_fault("kind=malformed")
        status, _, body = self.sim.contacts("cl-sim-100")
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_fault_ignore_paging(self):
        self.add_fault("kind=ignore-paging")
        data = page_data(self, *self.sim.contacts("cl-sim-120", 50, 50)[::2])
        self.assertEqual(data["skip"], 0)
        self.assertEqual(data["results"][0]["_id"], contact_id("cl-sim-120", 0))

    def test_fault_empty_page(self):
        self.add_fault("kind=empty-page&skip=50")
        data = page_data(self, *self.sim.contacts("cl-sim-120", 50, 50)[::2])
        self.assertEqual((data["results"], data["hasMore"]), ([], True))
        data = page_data(self, *self.sim.contacts("cl-sim-120", 50, 50)[::2])
        self.assertEqual(len(data["results"]), 50)

    def test_page_cache_never_serves_a_faulted_or_stale_page(self):
        self.add_fault("kind=truncate&skip=50")  # a faulted page is not cached...
        self.assertRaises(ValueError, json.loads, self.sim.contacts("cl-sim-120", 50, 50)[2])
        self.assertEqual(len(page_data(self, *self.sim.contacts("cl-sim-120", 50, 50)[::2])
                             ["results"]), 50)
        first = self.sim.contacts("cl-sim-120", 0, 50)[2]
        self.assertEqual(self.sim.contacts("cl-sim-120", 0, 50)[2], first)  # ...a clean one is
        status, _ = self.sim.control("POST", "/_sim/lists/cl-sim-120/mutate?op=insert&at=0&n=1")
        self.assertEqual(status, 200)
        data = page_data(self, *self.sim.contacts("cl-sim-120", 0, 50)[::2])
        self.assertEqual(data["totalResults"], 121)
        self.assertRegex(data["results"][0]["_id"], r"-n\d{8}$")
        self.assertEqual(data["results"][1]["_id"], contact_id("cl-sim-120", 0))
        self.sim.control("POST", "/_sim/reset")  # forgets the mutation
        self.assertEqual(self.sim.contacts("cl-sim-120", 0, 50)[2], first)

    def test_fault_mutate_shifts_the_list(self):
        self.add_fault("kind=mutate&op=delete&at=0&n=1&skip=50")
        page_data(self, *self.sim.contacts("cl-sim-120", 0, 50)[::2])
        data = page_data(self, *self.sim.contacts("cl-sim-120", 50, 50)[::2])
        self.assertEqual(data["totalResults"], 119)
        self.assertEqual(data["results"][0]["_id"], contact_id("cl-sim-120", 51))

    def test_fault_forever_and_listing(self):
        self.add_fault("kind=status&code=502&count=-1&list=cl-sim-7")
        for _ in range(3):
            self.assertEqual(self.sim.contacts("cl-sim-7")[0], 502)
        status, body = self.sim.control("GET", "/_sim/faults")
        self.assertEqual(status, 200)
        rules = json.loads(body)
        self.assertEqual(len(rules), 1)
        self.assertEqual((rules[0]["kind"], rules[0]["hits"], rules[0]["active"]),
                         ("status", 3, True))

    def test_invalid_fault_is_400(self):
        for spec in ("kind=nope", "code=503", "kind=status&code=9999", "kind=mutate",
                     "kind=status&bogus=1"):
            status, _ = self.sim.control("POST", "/_sim/faults?" + spec)
            self.assertEqual(status, 400, spec)

    # --- control API ----------------------------------------------------------------------------

    def test_stats_count_requests(self):
        self.sim.contacts("cl-sim-10")
        self.sim.contacts("cl-sim-10")
        self.sim.contacts("cl-missing")
        self.sim.request("GET", "/elsewhere")
        status, body = self.sim.control("GET", "/_sim/stats")
        self.assertEqual(status, 200)
        stats = json.loads(body)
        self.assertEqual(stats["requests"], 4)
        self.assertEqual(stats["list_requests"], 3)
        self.assertEqual(stats["by_status"], {"200": 2, "404": 2})
        self.assertEqual(stats["contacts_served"], 20)

    def test_stats_per_account(self):
        self.add_fault("kind=status&code=429&list=cl-sim-7")
        for _ in range(3):
            self.sim.contacts("cl-sim-10")
        self.sim.contacts("cl-sim-7")                             # 429 (a fault's)
        self.sim.contacts("cl-missing", account="acct-2")         # 404 after the rate check
        self.sim.contacts("cl-sim-10", token="not-a-jwt")         # 401: before the rate check
        self.sim.contacts("cl-sim-10", header_account="acct-3")   # 400: before the rate check
        stats = self.sim.control_json("GET", "/_sim/stats")
        self.assertEqual(stats["rate_window_seconds"], 60)
        self.assertEqual(stats["accounts"], {
            "acct-1": {"requests": 4, "rate_limited": 1, "max_in_window": 4},
            "acct-2": {"requests": 1, "rate_limited": 0, "max_in_window": 1},
        })
        self.assertEqual(stats["requests"], 7)
        self.sim.control("POST", "/_sim/reset")
        self.assertEqual(self.sim.control_json("GET", "/_sim/stats")["accounts"], {})

    def test_request_log_records_trace_headers_and_paging(self):
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        token = mint_jwt()
        before = datetime.datetime.now(datetime.timezone.utc)
        self.sim.contacts("cl-sim-120", 50, 50, token=token,
                          extra_headers={"traceparent": parent, "tracestate": "kore=1,sim=2"})
        self.sim.contacts("cl-sim-120", token=token)
        self.sim.contacts("cl-sim-7", 0, "x", token="not-a-jwt", account="acct-2",
                          extra_headers={"traceparent": parent})
        self.sim.request("GET", "/elsewhere")                     # not the contacts path
        self.sim.request("POST", contacts_path("cl-sim-7") + "?skip=3",
                         {"tracestate": "\u00e9" + "t" * 600})
        log = self.sim.control_json("GET", "/_sim/requests")
        after = datetime.datetime.now(datetime.timezone.utc)
        self.assertEqual((log["capacity"], log["dropped"]), (10000, 0))
        for entry in log["requests"]:
            when = datetime.datetime.strptime(entry.pop("time"), "%Y-%m-%dT%H:%M:%S.%f%z")
            self.assertTrue(before - datetime.timedelta(seconds=1) <= when <= after, when)
        self.assertEqual(log["requests"], [
            {"seq": 1, "method": "GET", "list": "cl-sim-120", "account": ACCOUNT, "skip": 50,
             "limit": 50, "status": 200, "traceparent": parent, "tracestate": "kore=1,sim=2"},
            {"seq": 2, "method": "GET", "list": "cl-sim-120", "account": ACCOUNT, "skip": None,
             "limit": None, "status": 200, "traceparent": None, "tracestate": None},
            {"seq": 3, "method": "GET", "list": "cl-sim-7", "account": "acct-2", "skip": 0,
             "limit": None, "status": 401, "traceparent": parent, "tracestate": None},
            {"seq": 4, "method": "POST", "list": "cl-sim-7", "account": "", "skip": 3,
             "limit": None, "status": 405, "traceparent": None, "tracestate": "?" + "t" * 511},
        ])
        # Never a credential: not the JWT, not the header names that carry them.
        raw = self.sim.control("GET", "/_sim/requests")[1].decode()
        for secret in (token, token.split(".")[2], SECRET, '"auth"', '"iid"'):
            self.assertNotIn(secret, raw)
        # Filters.
        only = self.sim.control_json("GET", "/_sim/requests?list=cl-sim-7")["requests"]
        self.assertEqual([e["seq"] for e in only], [3, 4])
        only = self.sim.control_json("GET", "/_sim/requests?list=cl-sim-120&account=acct-1")
        self.assertEqual([e["seq"] for e in only["requests"]], [1, 2])
        self.assertEqual(self.sim.control_json("GET", "/_sim/requests?account=nobody")["requests"],
                         [])
        self.assertEqual(self.sim.control("GET", "/_sim/requests?bogus=1")[0], 400)
        self.assertEqual(self.sim.control("POST", "/_sim/requests")[0], 405)
        # /_sim/reset clears it, and seq starts again.
        self.sim.control("POST", "/_sim/reset")
        self.assertEqual(self.sim.control_json("GET", "/_sim/requests")["requests"], [])
        self.sim.contacts("cl-sim-10", 5, 5)
        self.assertEqual([(e["seq"], e["skip"]) for e in
                          self.sim.control_json("GET", "/_sim/requests")["requests"]], [(1, 5)])

    def test_mutate_changes_ids(self):
        list_id = "cl-sim-4"

        def ids():
            status, body = self.sim.control("GET", f"/_sim/lists/{list_id}/ids")
            self.assertEqual(status, 200)
            return body.decode().split()

        original = [contact_id(list_id, i) for i in range(4)]
        self.assertEqual(ids(), original)
        status, body = self.sim.control("POST", f"/_sim/lists/{list_id}/mutate?op=insert&at=1&n=2")
        self.assertEqual((status, json.loads(body)), (200, {"size": 6}))
        after_insert = ids()
        self.assertEqual(len(after_insert), 6)
        self.assertEqual(after_insert[0], original[0])
        self.assertEqual(after_insert[3:], original[1:])
        for inserted in after_insert[1:3]:
            self.assertRegex(inserted, rf"^c-{fnv1a32(list_id):08x}-n\d{{8,}}$")
        self.assertEqual(len(set(after_insert)), 6)
        status, body = self.sim.control("POST", f"/_sim/lists/{list_id}/mutate?op=delete&at=0&n=2")
        self.assertEqual((status, json.loads(body)), (200, {"size": 4}))
        self.assertEqual(ids(), after_insert[2:])
        data = page_data(self, *self.sim.contacts(list_id)[::2])
        self.assertEqual([c["_id"] for c in data["results"]], after_insert[2:])
        self.assertEqual(self.sim.control("POST", "/_sim/reset")[0], 200)
        self.assertEqual(ids(), original)
        self.assertEqual(self.sim.control("POST", "/_sim/lists/nope/mutate?op=insert")[0], 404)
        self.assertEqual(self.sim.control("POST", f"/_sim/lists/{list_id}/mutate?op=delete&at=9")[0],
                         400)


class RateLimitTest(unittest.TestCase):
    def test_429_with_retry_after_per_account(self):
        sim = Sim("--quiet", "--rate-limit", "3")
        try:
            for _ in range(3):
                self.assertEqual(sim.contacts("cl-sim-10")[0], 200)
            status, headers, body = sim.contacts("cl-sim-10")
            self.assertEqual(status, 429)
            self.assertEqual(error_of(body), {"msg": RATE_LIMIT_MSG, "code": 429})
            self.assertTrue(1 <= int(headers["retry-after"]) <= 60, headers["retry-after"])
            self.assertEqual(sim.contacts("cl-sim-10", account="acct-2")[0], 200)
            stats = json.loads(sim.control("GET", "/_sim/stats")[1])
            self.assertEqual(stats["by_status"], {"200": 4, "429": 1})
            sim.control("POST", "/_sim/reset")
            self.assertEqual(sim.contacts("cl-sim-10")[0], 200)
        finally:
            sim.stop()


    def test_scaled_window_and_most_requests_in_any_window(self):
        sim = Sim("--quiet", "--rate-limit", "3", "--rate-window", "2")
        try:
            def wait_out_the_window():
                # Every request so far reached kore-sim before its answer came back here.
                time.sleep(max(0.0, last_answer + 2.05 - time.monotonic()))

            for _ in range(2):
                self.assertEqual(sim.contacts("cl-sim-10")[0], 200)
            last_answer = time.monotonic()
            wait_out_the_window()
            for _ in range(3):
                self.assertEqual(sim.contacts("cl-sim-10")[0], 200)
            status, headers, _ = sim.contacts("cl-sim-10")
            last_answer = time.monotonic()
            self.assertEqual(status, 429)
            self.assertIn(headers["retry-after"], ("1", "2"))
            self.assertEqual(sim.contacts("cl-sim-10", account="acct-2")[0], 200)
            stats = sim.control_json("GET", "/_sim/stats")
            self.assertEqual(stats["rate_window_seconds"], 2)
            # The first two requests fell out of the window: the busiest one held 4, not 6.
            self.assertEqual(stats["accounts"], {
                "acct-1": {"requests": 6, "rate_limited": 1, "max_in_window": 4},
                "acct-2": {"requests": 1, "rate_limited": 0, "max_in_window": 1},
            })
            wait_out_the_window()  # the limit admits again once the window has passed
            for _ in range(3):
                self.assertEqual(sim.contacts("cl-sim-10")[0], 200)
            self.assertEqual(sim.control_json("GET", "/_sim/stats")["accounts"]["acct-1"],
                             {"requests": 9, "rate_limited": 1, "max_in_window": 4})
        finally:
            sim.stop()


class OptionsTest(unittest.TestCase):
    def test_require_jti(self):
        sim = Sim("--quiet", "--require-jti", "--app", "app-2=s2")
        try:
            token = mint_jwt("app-2", "s2", jti="abc-1")
            self.assertEqual(sim.contacts("cl-sim-5", token=token, iid="app-2")[0], 200)
            status, _, body = sim.contacts("cl-sim-5", token=token, iid="app-2")
            self.assertEqual(status, 401, body)
            status, _, _ = sim.contacts("cl-sim-5", token=mint_jwt("app-2", "s2"), iid="app-2")
            self.assertEqual(status, 401)
            # --app replaces the default app.
            self.assertEqual(sim.contacts("cl-sim-5", token=mint_jwt(jti="x"))[0], 401)
        finally:
            sim.stop()

    def test_no_auth_dirty_and_param_names(self):
        sim = Sim("--quiet", "--no-auth", "--dirty", "--skip-param", "offset", "--limit-param",
                  "size")
        try:
            status, _, body = sim.contacts("cl-sim-100", token="",
                                           extra_query={"offset": 50, "size": 50})
            data = page_data(self, status, body)
            self.assertEqual((data["skip"], data["limit"], data["totalResults"]),
                             ("50", "50", "100"))  # strings on odd pages
            by_index = {int(c["_id"][-8:]): c for c in data["results"]}
            self.assertNotIn("phoneNumber", by_index[55])      # ordinal 56 = 7 * 8
            self.assertIsNone(by_index[54]["updatedAt"])       # ordinal 55 = 11 * 5
            self.assertNotIn(".", by_index[59]["createdAt"])   # ordinal 60 = 5 * 12
            self.assertIn("attributes", by_index[51])
            data = page_data(self, *sim.contacts("cl-sim-100", token="",
                                                 extra_query={"offset": 0, "size": 50})[::2])
            self.assertEqual(data["skip"], 0)
        finally:
            sim.stop()

    def test_page_size_flags_and_request_log_size(self):
        sim = Sim("--quiet", "--max-limit", "60", "--reject-limit-above", "100", "--limit-param",
                  "size", "--request-log", "3")
        try:
            status, _, body = sim.contacts("cl-sim-500", extra_query={"size": 101})
            self.assertEqual((status, error_of(body)),
                             (400, {"msg": "size must be between 1 and 100", "code": 400}))
            data = page_data(self, *sim.contacts("cl-sim-500", extra_query={"size": 100})[::2])
            self.assertEqual((len(data["results"]), data["limit"], data["hasMore"]), (60, 60, True))
            self.assertEqual(sim.control_json("GET", "/_sim/config"),
                             {"default_limit": 50, "max_limit": 60, "reject_limit_above": 100})
            for skip in (1, 2, 3):
                sim.contacts("cl-sim-500", skip)
            log = sim.control_json("GET", "/_sim/requests")
            self.assertEqual((log["capacity"], log["dropped"]), (3, 2))
            self.assertEqual([(e["seq"], e["skip"]) for e in log["requests"]],
                             [(3, 1), (4, 2), (5, 3)])
        finally:
            sim.stop()
        sim = Sim("--quiet", "--request-log", "0")
        try:
            sim.contacts("cl-sim-5")
            self.assertEqual(sim.control_json("GET", "/_sim/requests"),
                             {"capacity": 0, "dropped": 1, "requests": []})
        finally:
            sim.stop()

    @unittest.skipUnless(shutil.which("openssl"), "needs the openssl command")
    def test_https(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                            "1", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                           check=True, capture_output=True)
            sim = Sim("--quiet", "--tls-cert", cert, "--tls-key", key)
            try:
                self.assertEqual(sim.scheme, "https")
                conn = sim.connection()
                for skip in (0, 5):
                    data = page_data(self, *sim.contacts("cl-sim-10", skip, 5, conn=conn)[::2])
                    self.assertEqual(data["results"][0]["_id"], contact_id("cl-sim-10", skip))
                conn.close()
            finally:
                sim.stop()

    def test_bad_flag_exits_2(self):
        for flags in (["--bogus"], ["--threads", "0"], ["--fault", "kind=nope"], ["--list", "x"],
                      ["--rate-window", "0"], ["--reject-limit-above", "10"],
                      ["--request-log", "-1"]):
            result = subprocess.run([KORE_SIM, *flags], capture_output=True, text=True, timeout=10)
            self.assertEqual(result.returncode, 2, flags)
            self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)

    def test_help(self):
        result = subprocess.run([KORE_SIM, "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(result.returncode, 0)
        for flag in ("--listen", "--rate-limit", "--rate-window", "--fault", "--dirty",
                     "--max-limit", "--reject-limit-above", "--request-log", "/_sim/stats",
                     "/_sim/requests", "/_sim/config", "max_in_window", "traceparent"):
            self.assertIn(flag, result.stdout)


def main():
    global KORE_SIM
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kore-sim", required=True, help="path to the kore-sim binary")
    args, rest = parser.parse_known_args()
    KORE_SIM = os.path.abspath(args.kore_sim)
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
