#!/usr/bin/python3
"""Streams one contact list from contacts-gateway and prints it as JSON lines on stdout.

A Python caller of contacts.v1.ContactService/StreamContacts (Debian's python3-grpcio) with the
resume logic of the C++ client (client/contacts_client.cc): when a call ends with UNAVAILABLE (the
gateway restarted or drained, or its upstream kept failing) or RESOURCE_EXHAUSTED (rate limited),
wait and call again with the resume token of the last message received, so every contact is
printed exactly once and in order. The wait is the delay the gateway advises (google.rpc.RetryInfo
in grpc-status-details-bin, at most 60 s), else a full-jitter backoff; a resume_token in the
error's google.rpc.ErrorInfo is used as the token. It gives up after --max-resumes resumes in a row
without a new contact; any other status ends the stream at once. (After a drain the trailing
metadata `contacts-resume-token` holds the same token as the last message.) Resume notes, the
summary and errors go to stderr; the exit code is the gRPC status code (0 = OK), 64 for a usage
error, 66 when a credential file (or $CONTACTS_TOKEN) cannot be read or used.

Logging in: --token-file (else $CONTACTS_TOKEN) sends `authorization: Bearer <token>`; --ca-file
(or --cert-file) switches to TLS, --cert-file/--key-file present a client certificate (mutual TLS).

The stubs (contacts.v1 and google.rpc) are generated at build time (`cmake --build build --target
contacts_python_stubs`, into build/examples/python):

    PYTHONPATH=build/examples/python /usr/bin/python3 examples/python/stream_contacts.py \
      --target localhost:50051 --stream-id st-... --list-id cl-... --account-id ...
"""

import argparse
import json
import os
import random
import sys
import threading
import time

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from contacts.v1 import contacts_pb2, contacts_pb2_grpc

RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
MAX_RETRY_DELAY = 60.0  # seconds: the most of a RetryInfo delay that is waited
ERROR_DOMAIN = "contacts-gateway"  # ErrorInfo.domain of the gateway's errors
EXIT_NO_INPUT = 66  # a credential file (or $CONTACTS_TOKEN) cannot be read or used


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """Usage errors exit 64 (EX_USAGE), as contacts-cli's and the other examples' do."""
        self.print_usage(sys.stderr)
        self.exit(64, f"{self.prog}: error: {message}\n")


def parse_args(argv):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:50051", help="gateway HOST:PORT")
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
    parser.add_argument("--ca-file", help="use TLS, trusting the CA certificates in this PEM file "
                        "(without it or --cert-file: plaintext)")
    parser.add_argument("--cert-file", help="use TLS and present this PEM client certificate (mutual "
                        "TLS; needs --key-file; without --ca-file the system's CAs are trusted)")
    parser.add_argument("--key-file", help="the client certificate's PEM private key")
    parser.add_argument("--token-file", help="send the token in this file as metadata "
                        "`authorization: Bearer <token>` (default: $CONTACTS_TOKEN)")
    parser.add_argument("--jwt-file", help="send the caller's own Kore.ai JWT in this file as metadata `auth`")
    parser.add_argument("--app-id", help="send the app (client) id as metadata `iid`")
    args = parser.parse_args(argv)
    if bool(args.cert_file) != bool(args.key_file):
        parser.error("--cert-file and --key-file go together")
    return args


class CredentialError(Exception):
    """A credential file or $CONTACTS_TOKEN cannot be used; the message never holds a token."""


def read_file(path):
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as error:
        raise CredentialError(f"cannot read {path}: {error.strerror}") from None
    if not content.strip():
        raise CredentialError(f"{path} is empty")
    return content


def checked_token(token, source):
    """A token as metadata carries it: printable ASCII (0x20-0x7E) only."""
    if not all(0x20 <= ord(c) <= 0x7E for c in token):
        raise CredentialError(f"{source} holds characters other than printable ASCII")
    return token


def call_metadata(args):
    """The metadata every call sends: bearer token, pass-through JWT and app id."""
    metadata = []
    if args.token_file:
        token = read_file(args.token_file).decode("latin-1").strip()
        metadata.append(("authorization", "Bearer " + checked_token(token, args.token_file)))
    elif os.environ.get("CONTACTS_TOKEN", "").strip():
        token = os.environ["CONTACTS_TOKEN"].strip()
        metadata.append(("authorization", "Bearer " + checked_token(token, "CONTACTS_TOKEN")))
    if args.jwt_file:
        jwt = read_file(args.jwt_file).decode("latin-1").strip()
        metadata.append(("auth", checked_token(jwt, args.jwt_file)))
    if args.app_id:
        metadata.append(("iid", checked_token(args.app_id, "--app-id")))
    return metadata


def channel_credentials(args):
    """TLS credentials when --ca-file or --cert-file is given, else None (plaintext)."""
    if not args.ca_file and not args.cert_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=read_file(args.ca_file) if args.ca_file else None,
        private_key=read_file(args.key_file) if args.key_file else None,
        certificate_chain=read_file(args.cert_file) if args.cert_file else None)


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


def error_advice(error):
    """(reason, resume_token, retry_delay or None) from the gateway's rich error details, as
    ParseErrorAdvice in C++: a google.rpc.Status in the trailer grpc-status-details-bin whose details
    hold google.rpc.ErrorInfo (domain contacts-gateway) and google.rpc.RetryInfo."""
    reason, token, delay = "", "", None
    for key, value in error.trailing_metadata() or ():
        if key != "grpc-status-details-bin":
            continue
        try:
            details = status_pb2.Status.FromString(value).details
        except DecodeError:
            break
        for detail in details:
            info, retry = error_details_pb2.ErrorInfo(), error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                if info.domain == ERROR_DOMAIN:
                    reason, token = info.reason, info.metadata.get("resume_token", "")
            elif detail.Unpack(retry) and retry.HasField("retry_delay"):
                delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return reason, token, delay


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
            reason, advised_token, delay = error_advice(error)
        watchdog.cancel()
        if gave_up.is_set():
            code, details = grpc.StatusCode.UNAVAILABLE, f"no gateway answered within {connect_timeout}s"
            reason, advised_token, delay = "", "", None
        # Every message comes before the status: the error's token is never behind the last one's.
        token = advised_token or token
        if code not in RESUMABLE or without_progress >= max_resumes:
            print(f"stream ended: {code.name}{f' ({reason})' if reason else ''}: {details}", file=sys.stderr)
            return code, printed, resumes, token
        without_progress += 1
        resumes += 1
        advised = delay is not None
        wait = min(max(delay, 0.0), MAX_RETRY_DELAY) if advised else backoff(without_progress)
        print(f"resuming after {code.name} ({details}) in {wait:.2f}s{' as advised' if advised else ''}, "
              f"{printed} contacts so far", file=sys.stderr)
        out.flush()
        time.sleep(wait)


def main(argv):
    args = parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8")  # the same bytes as the other clients, whatever the locale
    request = contacts_pb2.StreamContactsRequest(
        stream_id=args.stream_id, contact_list_id=args.list_id, account_id=args.account_id,
        page_size=args.page_size, max_batch_size=args.batch_size, max_contacts=args.max_contacts,
        resume_token=args.resume_token)
    try:
        metadata = call_metadata(args)
        credentials = channel_credentials(args)
    except CredentialError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NO_INPUT
    # Quick reconnects (as GatewayChannelArguments in C++), so a resume finds a restarted gateway.
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.initial_reconnect_backoff_ms", 100),
               ("grpc.max_reconnect_backoff_ms", 2000)]
    channel = (grpc.secure_channel(args.target, credentials, options=options) if credentials
               else grpc.insecure_channel(args.target, options=options))
    with channel:
        stub = contacts_pb2_grpc.ContactServiceStub(channel)
        code, printed, resumes, token = stream(stub, request, metadata, args.max_resumes, sys.stdout)
    sys.stdout.flush()
    summary = f"{printed} contacts, {resumes} resumes"
    print(summary if code == grpc.StatusCode.OK else f"{summary}; resume token: {token}", file=sys.stderr)
    return code.value[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
