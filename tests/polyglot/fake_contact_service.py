#!/usr/bin/python3
"""A fake contacts.v1.ContactService that advises its callers how to retry (retry_advice_test.sh).

Every list it serves holds contacts c-0 .. c-999, 100 a message, with resume tokens tok-<next index>.
The first call of a list sends 300 contacts, then ends as the gateway ends a rate-limited stream:
RESOURCE_EXHAUSTED with a google.rpc.Status in grpc-status-details-bin holding ErrorInfo (domain
contacts-gateway, reason UPSTREAM_RATE_LIMITED, metadata resume_token err-300: the same place as
tok-300, spelled differently so that the test sees which one comes back) and RetryInfo (--delay
seconds). Later calls resume from tok-300 or err-300 and serve the rest. A few contacts carry text
and times that JSON printers tend to disagree on.

Prints "listening on 127.0.0.1:PORT", then one line per call:
    call list=LIST n=N token=TOKEN gap=SECONDS
gap being the time since this list's failure was sent (-1 before it). Runs until killed.
Usage: PYTHONPATH=<contacts.v1 and google.rpc stubs> fake_contact_service.py [--delay SECONDS]
"""

import argparse
import sys
import threading
import time
from concurrent import futures

import grpc
from google.rpc import error_details_pb2, status_pb2

from contacts.v1 import contacts_pb2, contacts_pb2_grpc

LIST_SIZE, BATCH, FAIL_AT = 1000, 100, 300
# Contacts whose text or times are easy to print differently.
SPECIAL_PHONES = {
    1: 'quote " backslash \\ tab \t nl \n cr \r bs \b ff \f ctl \x01 \x1f del \x7f',
    2: "Zo\u00eb \u260e \u2028 \u2029 \U0001f600",
}
NO_TIMES, BEFORE_EPOCH, EPOCH = 3, 4, 5


def contact(index):
    c = contacts_pb2.Contact(id=f"c-{index}", phone_number=SPECIAL_PHONES.get(index, f"+1555{index:07d}"))
    if index == BEFORE_EPOCH:
        c.create_time.FromNanoseconds(-500000000)  # 1969-12-31T23:59:59.500Z
        c.update_time.seconds = 0
    elif index == EPOCH:
        c.create_time.seconds = 0
        c.update_time.seconds = 0
    elif index != NO_TIMES:
        # Sub-millisecond nanos: printers must truncate, not round.
        c.create_time.seconds, c.create_time.nanos = 1700000000 + index, (index * 7919 % 1000) * 1000000 + 999999
        c.update_time.seconds = 1710000000 + index
    return c


class Service(contacts_pb2_grpc.ContactServiceServicer):
    def __init__(self, delay):
        self.delay = delay
        self.lock = threading.Lock()
        self.calls = {}  # list -> calls so far
        self.failed_at = {}  # list -> time.monotonic() when its failure was sent

    def StreamContacts(self, request, context):
        now = time.monotonic()
        with self.lock:
            n = self.calls[request.contact_list_id] = self.calls.get(request.contact_list_id, 0) + 1
            gap = now - self.failed_at[request.contact_list_id] if request.contact_list_id in self.failed_at else -1
        print(f"call list={request.contact_list_id} n={n} token={request.resume_token or '-'} gap={gap:.3f}",
              flush=True)
        if request.resume_token in ("", "tok-0"):
            first = 0
        elif request.resume_token in (f"tok-{FAIL_AT}", f"err-{FAIL_AT}"):
            first = FAIL_AT
        else:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "resume_token: not one of mine")
        for start in range(first, LIST_SIZE, BATCH):
            if n == 1 and start == FAIL_AT:
                self.fail(context, request.contact_list_id)
                return
            end = min(start + BATCH, LIST_SIZE)
            yield contacts_pb2.StreamContactsResponse(
                contacts=[contact(i) for i in range(start, end)], resume_token=f"tok-{end}",
                total_results=LIST_SIZE, delivered_count=end)

    def fail(self, context, list_id):
        info = error_details_pb2.ErrorInfo(reason="UPSTREAM_RATE_LIMITED", domain="contacts-gateway",
                                           metadata={"resume_token": f"err-{FAIL_AT}"})
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(self.delay * 1e9))
        rich = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                                 message="the upstream's rate limit is spent (fake)")
        rich.details.add().Pack(info)
        rich.details.add().Pack(retry)
        context.set_trailing_metadata((("grpc-status-details-bin", rich.SerializeToString()),))
        context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
        context.set_details(rich.message)
        with self.lock:
            self.failed_at[list_id] = time.monotonic()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=1.5, help="RetryInfo.retry_delay, seconds")
    args = parser.parse_args()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    contacts_pb2_grpc.add_ContactServiceServicer_to_server(Service(args.delay), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
