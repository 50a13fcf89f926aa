#!/usr/bin/python3
"""Streams one contact list from contacts-gateway and prints it as JSON lines on stdout.

A Python caller of contacts.v1.ContactService/StreamContacts (Debian's python3-grpcio) with the
resume logic of the C++ client (client/contacts_client.cc): when a call ends with UNAVAILABLE (the
gateway restarted or drained, or its upstream kept failing), sleep a full-jitter backoff and call
again with the resume_token of the last message received, so every contact is printed exactly once
and in order. It gives up after --max-resumes resumes in a row without a new contact; any other
status ends the stream at once. (After a drain the trailing metadata `contacts-resume-token` holds
the same token as the last message.) Resume notes, the summary and errors go to stderr; the exit
code is the gRPC status code (0 = OK).

The stubs are generated from proto/ at build time (`cmake --build build --target
contacts_python_stubs`, into build/examples/python):

    PYTHONPATH=build/examples/python /usr/bin/python3 examples/python/stream_contacts.py \
      --target localhost:50051 --stream-id st-... --list-id cl-... --account-id ...
"""

import argparse
import json
import random
import sys
import threading
import time

import grpc

from contacts.v1 import contacts_pb2, contacts_pb2_grpc


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway HOST:PORT (plaintext)")
    parser.add_argument("--stream-id", required=True, help="bot (stream) id that owns the list")
    parser.add_argument("--list-id", required=True, help="contact list id")
    parser.add_argument("--account-id", required=True, help="Kore.ai account id of the list")
    parser.add_argument("--page-size", type=int, default=0,
                        help="contacts per upstream page (0 = the gateway's default)")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="most contacts per message (0 = the gateway's default)")
    parser.add_argument("--max-contacts", type=int, default=0, help="stop after N contacts (0 = all)")
    parser.add_argument("--resume-token", default="", help="continue after an earlier run's last contact")
    parser.add_argument("--max-resumes", type=int, default=5,
                        help="resumes in a row without a new contact before giving up (default 5)")
    parser.add_argument("--jwt-file", help="send the JWT in this file as metadata `auth`")
    parser.add_argument("--app-id", help="send the app (client) id as metadata `iid`")
    return parser.parse_args(argv)


def rfc3339(message, field):
    """UTC with milliseconds, as contacts-cli prints it: "2024-01-02T03:04:05.120Z"; None when unset."""
    if not message.HasField(field):
        return None
    timestamp = getattr(message, field)
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp.seconds))
    return f"{seconds}.{timestamp.nanos // 1000000:03d}Z"


def contact_json(contact):
    fields = {"id": contact.id, "phone_number": contact.phone_number,
              "create_time": rfc3339(contact, "create_time"), "update_time": rfc3339(contact, "update_time")}
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False)


def backoff(attempt, initial=0.2, cap=10.0):
    """Full jitter: uniform in [0, min(cap, initial * 2^(attempt-1))], as ResumeBackoff in C++."""
    return random.uniform(0, min(cap, initial * 2 ** (attempt - 1)))


def stream(stub, request, metadata, max_resumes, out, connect_timeout=20):
    """Streams with resumes; returns (final status code, contacts printed, resumes, last token)."""
    printed = resumes = without_progress = 0
    token = request.resume_token
    while True:
        request.resume_token = token
        # A restarting gateway is waited for (wait_for_ready), but only until connect_timeout: the
        # gateway sends its headers as soon as it takes the call.
        call = stub.StreamContacts(request, metadata=metadata, wait_for_ready=True)
        gave_up = threading.Event()
        watchdog = threading.Timer(connect_timeout, lambda: (gave_up.set(), call.cancel()))
        watchdog.start()
        try:
            call.initial_metadata()
            watchdog.cancel()
            for response in call:
                for contact in response.contacts:
                    out.write(contact_json(contact) + "\n")
                printed += len(response.contacts)
                if response.contacts:
                    without_progress = 0
                if response.resume_token:
                    token = response.resume_token
            return grpc.StatusCode.OK, printed, resumes, token
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
        watchdog.cancel()
        if gave_up.is_set():
            code, details = grpc.StatusCode.UNAVAILABLE, f"no gateway answered within {connect_timeout}s"
        if code != grpc.StatusCode.UNAVAILABLE or without_progress >= max_resumes:
            print(f"stream ended: {code.name}: {details}", file=sys.stderr)
            return code, printed, resumes, token
        without_progress += 1
        resumes += 1
        wait = backoff(without_progress)
        print(f"resuming after {code.name} ({details}) in {wait:.2f}s, {printed} contacts so far",
              file=sys.stderr)
        out.flush()
        time.sleep(wait)


def main(argv):
    args = parse_args(argv)
    request = contacts_pb2.StreamContactsRequest(
        stream_id=args.stream_id, contact_list_id=args.list_id, account_id=args.account_id,
        page_size=args.page_size, max_batch_size=args.batch_size, max_contacts=args.max_contacts,
        resume_token=args.resume_token)
    metadata = []
    if args.jwt_file:
        with open(args.jwt_file, encoding="utf-8") as f:
            metadata.append(("auth", f.read().strip()))
    if args.app_id:
        metadata.append(("iid", args.app_id))
    # Quick reconnects (as GatewayChannelArguments in C++), so a resume finds a restarted gateway.
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.initial_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 2000)]
    with grpc.insecure_channel(args.target, options=options) as channel:
        stub = contacts_pb2_grpc.ContactServiceStub(channel)
        code, printed, resumes, token = stream(stub, request, metadata, args.max_resumes, sys.stdout)
    sys.stdout.flush()
    summary = f"{printed} contacts, {resumes} resumes"
    print(summary if code == grpc.StatusCode.OK else f"{summary}; resume token: {token}", file=sys.stderr)
    return code.value[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
