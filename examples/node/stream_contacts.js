#!/usr/bin/env node
// Streams one contact list from contacts-gateway and prints it as JSON lines on stdout.
//
// A Node caller of contacts.v1.ContactService/StreamContacts (@grpc/grpc-js, with the .proto loaded
// at run time by @grpc/proto-loader) with the resume logic of the C++ client
// (client/contacts_client.cc): when a call ends with UNAVAILABLE (the gateway restarted or drained,
// or its upstream kept failing) or RESOURCE_EXHAUSTED (rate limited), wait and call again with the
// resume token of the last message received, so every contact is printed exactly once and in order.
// The wait is the delay the gateway advises (google.rpc.RetryInfo in grpc-status-details-bin, at
// most 60 s), else a full-jitter backoff; a resume_token in the error's google.rpc.ErrorInfo is used
// as the token (googleapis' .proto files from google-proto-files, decoded with protobufjs). It gives
// up after --max-resumes resumes in a row without a new contact; any other status ends the stream
// at once. (After a drain the trailing metadata `contacts-resume-token` holds the same token as the
// last message.) Resume notes, the summary and errors go to stderr; the exit code is the gRPC
// status code (0 = OK), 64 for a usage error, 66 when a credential file (or $CONTACTS_TOKEN) cannot
// be read or used.
//
// Logging in: --token-file (else $CONTACTS_TOKEN) sends `authorization: Bearer <token>`; --ca-file
// (or --cert-file) switches to TLS, --cert-file/--key-file present a client certificate (mutual TLS).
//
//   npm install --prefix examples/node   # or NODE_PATH=<a node_modules with these packages>
//   node examples/node/stream_contacts.js --target localhost:50051 \
//     --stream-id st-... --list-id cl-... --account-id ...
'use strict';

const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const usage = `Usage: stream_contacts.js --stream-id ID --list-id ID --account-id ID [--target HOST:PORT]
  [--page-size N] [--batch-size N] [--max-contacts N] [--resume-token T] [--max-resumes N]
  [--ca-file FILE] [--cert-file FILE --key-file FILE] [--token-file FILE (default: $CONTACTS_TOKEN)]
  [--jwt-file FILE] [--app-id ID] [--proto-dir DIR (default: this repository's proto/)]
TLS when --ca-file or --cert-file is given (the system's CAs without --ca-file), else plaintext;
--cert-file/--key-file: a client certificate (mutual TLS); --token-file: metadata
\`authorization: Bearer <token>\`; --jwt-file/--app-id: the caller's own Kore.ai JWT and app id.`;

const RESUMABLE = [grpc.status.UNAVAILABLE, grpc.status.RESOURCE_EXHAUSTED];
const MAX_RETRY_DELAY = 60; // seconds: the most of a RetryInfo delay that is waited
const ERROR_DOMAIN = 'contacts-gateway'; // ErrorInfo.domain of the gateway's errors
const EXIT_NO_INPUT = 66; // a credential file (or $CONTACTS_TOKEN) cannot be read or used

// A credential file or $CONTACTS_TOKEN cannot be used; the message never holds a token.
class CredentialError extends Error {}

function parseFlags(argv) {
  const int = (name, value) => {
    if (!/^\d+$/.test(value)) throw new Error(`--${name} wants a non-negative integer, got "${value}"`);
    return Number(value);
  };
  const { values } = parseArgs({
    args: argv,
    options: {
      'target': { type: 'string', default: '127.0.0.1:50051' },
      'stream-id': { type: 'string' },
      'list-id': { type: 'string' },
      'account-id': { type: 'string' },
      'page-size': { type: 'string', default: '0' },
      'batch-size': { type: 'string', default: '0' },
      'max-contacts': { type: 'string', default: '0' },
      'resume-token': { type: 'string', default: '' },
      'max-resumes': { type: 'string', default: '5' },
      'ca-file': { type: 'string' },
      'cert-file': { type: 'string' },
      'key-file': { type: 'string' },
      'token-file': { type: 'string' },
      'jwt-file': { type: 'string' },
      'app-id': { type: 'string' },
      'proto-dir': { type: 'string', default: path.join(__dirname, '..', '..', 'proto') },
      'help': { type: 'boolean', default: false },
    },
  });
  if (values.help) return values;
  for (const required of ['stream-id', 'list-id', 'account-id']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  for (const name of ['page-size', 'batch-size', 'max-contacts', 'max-resumes']) {
    values[name] = int(name, values[name]);
  }
  if (!values['cert-file'] !== !values['key-file']) throw new Error('--cert-file and --key-file go together');
  return values;
}

function readFile(file) {
  let content;
  try {
    content = fs.readFileSync(file);
  } catch (error) {
    throw new CredentialError(`cannot read ${file}: ${error.code}`);
  }
  if (content.toString('latin1').trim() === '') throw new CredentialError(`${file} is empty`);
  return content;
}

// A token as metadata carries it: printable ASCII (0x20-0x7E) only.
function checkedToken(token, source) {
  if (!/^[\x20-\x7e]*$/.test(token)) {
    throw new CredentialError(`${source} holds characters other than printable ASCII`);
  }
  return token;
}

// The metadata every call sends: bearer token, pass-through JWT and app id.
function callMetadata(flags) {
  const metadata = new grpc.Metadata();
  const envToken = (process.env.CONTACTS_TOKEN || '').trim();
  if (flags['token-file']) {
    const token = readFile(flags['token-file']).toString('latin1').trim();
    metadata.set('authorization', `Bearer ${checkedToken(token, flags['token-file'])}`);
  } else if (envToken) {
    metadata.set('authorization', `Bearer ${checkedToken(envToken, 'CONTACTS_TOKEN')}`);
  }
  if (flags['jwt-file']) {
    const jwt = readFile(flags['jwt-file']).toString('latin1').trim();
    metadata.set('auth', checkedToken(jwt, flags['jwt-file']));
  }
  if (flags['app-id']) metadata.set('iid', checkedToken(flags['app-id'], '--app-id'));
  return metadata;
}

// TLS when --ca-file or --cert-file is given, else plaintext.
function channelCredentials(flags) {
  if (!flags['ca-file'] && !flags['cert-file']) return grpc.credentials.createInsecure();
  const pem = (name) => (flags[name] ? readFile(flags[name]) : null);
  return grpc.credentials.createSsl(pem('ca-file'), pem('key-file'), pem('cert-file'));
}

// google.rpc.Status, ErrorInfo and RetryInfo, from the google-proto-files package.
function loadErrorTypes() {
  const dir = path.dirname(require.resolve('google-proto-files/package.json'));
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(dir, target);
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
  return root;
}

// {reason, token, delay (seconds, or null)} from the gateway's rich error details, as
// ParseErrorAdvice in C++: a google.rpc.Status in the trailer grpc-status-details-bin whose details
// hold google.rpc.ErrorInfo (domain contacts-gateway) and google.rpc.RetryInfo.
function errorAdvice(types, metadata) {
  const advice = { reason: '', token: '', delay: null };
  const [bytes] = metadata ? metadata.get('grpc-status-details-bin') : [];
  if (!bytes) return advice;
  let details;
  try {
    details = types.lookupType('google.rpc.Status').decode(bytes).details;
  } catch (error) {
    return advice;
  }
  for (const detail of details) {
    const name = detail.type_url.slice(detail.type_url.lastIndexOf('/') + 1);
    if (name === 'google.rpc.ErrorInfo') {
      const info = types.lookupType(name).decode(detail.value);
      if (info.domain !== ERROR_DOMAIN) continue;
      advice.reason = info.reason;
      advice.token = info.metadata.resume_token || '';
    } else if (name === 'google.rpc.RetryInfo') {
      const type = types.lookupType(name);
      const retry = type.toObject(type.decode(detail.value), { longs: Number });
      if (retry.retry_delay) advice.delay = (retry.retry_delay.seconds || 0) + (retry.retry_delay.nanos || 0) / 1e9;
    }
  }
  return advice;
}

// UTC with milliseconds, as contacts-cli prints it: "2024-01-02T03:04:05.120Z"; null when unset.
function rfc3339(timestamp) {
  if (!timestamp) return null;
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1e6)).toISOString();
}

function contactJson(contact) {
  return JSON.stringify({
    id: contact.id,
    phone_number: contact.phone_number,
    create_time: rfc3339(contact.create_time),
    update_time: rfc3339(contact.update_time),
  });
}

// Full jitter: uniform in [0, min(cap, initial * 2^(attempt-1))] seconds, as ResumeBackoff in C++.
function backoffSeconds(attempt, initial = 0.2, cap = 10) {
  return Math.random() * Math.min(cap, initial * 2 ** (attempt - 1));
}

// One call: prints its contacts and returns how it ended ({code, details, metadata}).
async function callOnce(client, request, metadata, state) {
  // A restarting gateway is waited for (up to 20 s, then UNAVAILABLE) rather than failed at once.
  const ready = await new Promise((resolve) => client.waitForReady(Date.now() + 20000, resolve));
  if (ready) return { code: grpc.status.UNAVAILABLE, details: 'no gateway answered within 20s' };
  const call = client.StreamContacts(request, metadata, { waitForReady: true });
  try {
    // The iterator hands over every message received before it throws the call's error.
    for await (const response of call) {
      process.stdout.write(response.contacts.map((contact) => contactJson(contact) + '\n').join(''));
      state.printed += response.contacts.length;
      if (response.contacts.length > 0) state.withoutProgress = 0;
      if (response.resume_token) state.token = response.resume_token;
    }
    return { code: grpc.status.OK, details: '' };
  } catch (error) {
    if (error.code === undefined) throw error;
    return { code: error.code, details: error.details, metadata: error.metadata };
  }
}

async function main() {
  let flags;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (error) {
    console.error(`${error.message}\n${usage}`);
    return 64;
  }
  if (flags.help) {
    console.log(usage);
    return 0;
  }
  let metadata;
  let credentials;
  try {
    metadata = callMetadata(flags);
    credentials = channelCredentials(flags);
  } catch (error) {
    if (!(error instanceof CredentialError)) throw error;
    console.error(`error: ${error.message}`);
    return EXIT_NO_INPUT;
  }
  const definition = protoLoader.loadSync('contacts/v1/contacts.proto', {
    includeDirs: [flags['proto-dir']], keepCase: true, longs: String, defaults: true,
  });
  const { ContactService } = grpc.loadPackageDefinition(definition).contacts.v1;
  const errorTypes = loadErrorTypes();
  // Quick reconnects (as GatewayChannelArguments in C++), so a resume finds a restarted gateway.
  const client = new ContactService(flags.target, credentials, {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2000,
  });

  const request = {
    stream_id: flags['stream-id'], contact_list_id: flags['list-id'], account_id: flags['account-id'],
    page_size: flags['page-size'], max_batch_size: flags['batch-size'], max_contacts: flags['max-contacts'],
  };
  const state = { printed: 0, withoutProgress: 0, token: flags['resume-token'] };
  let resumes = 0;
  let status;
  for (;;) {
    status = await callOnce(client, { ...request, resume_token: state.token }, metadata, state);
    const advice = errorAdvice(errorTypes, status.metadata);
    // Every message comes before the status: the error's token is never behind the last one's.
    state.token = advice.token || state.token;
    status.reason = advice.reason;
    if (!RESUMABLE.includes(status.code) || state.withoutProgress >= flags['max-resumes']) break;
    state.withoutProgress++;
    resumes++;
    const advised = advice.delay !== null;
    const wait = advised ? Math.min(Math.max(advice.delay, 0), MAX_RETRY_DELAY) : backoffSeconds(state.withoutProgress);
    console.error(`resuming after ${grpc.status[status.code]} (${status.details}) in ${wait.toFixed(2)}s` +
                  `${advised ? ' as advised' : ''}, ${state.printed} contacts so far`);
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
  client.close();
  if (status.code !== grpc.status.OK) {
    console.error(`stream ended: ${grpc.status[status.code]}${status.reason ? ` (${status.reason})` : ''}: ` +
                  `${status.details}`);
  }
  console.error(`${state.printed} contacts, ${resumes} resumes` +
                (status.code !== grpc.status.OK ? `; resume token: ${state.token}` : ''));
  return status.code;
}

main().then((code) => { process.exitCode = code; });
