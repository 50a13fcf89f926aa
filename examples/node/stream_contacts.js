#!/usr/bin/env node
// Streams one contact list from contacts-gateway and prints it as JSON lines on stdout.
//
// A Node caller of contacts.v1.ContactService/StreamContacts (@grpc/grpc-js, with the .proto loaded
// at run time by @grpc/proto-loader) with the resume logic of the C++ client
// (client/contacts_client.cc): when a call ends with UNAVAILABLE (the gateway restarted or drained,
// or its upstream kept failing), wait a full-jitter backoff and call again with the resume_token of
// the last message received, so every contact is printed exactly once and in order. It gives up
// after --max-resumes resumes in a row without a new contact; any other status ends the stream at
// once. (After a drain the trailing metadata `contacts-resume-token` holds the same token as the
// last message.) Resume notes, the summary and errors go to stderr; the exit code is the gRPC
// status code (0 = OK).
//
//   npm install --prefix examples/node   # or NODE_PATH=<a node_modules with both packages>
//   node examples/node/stream_contacts.js --target localhost:50051 \
//     --stream-id st-... --list-id cl-... --account-id ...
'use strict';

const fs = require('fs');
const path = require('path');
const { parseArgs } = require('util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const usage = `Usage: stream_contacts.js --stream-id ID --list-id ID --account-id ID [--target HOST:PORT]
  [--page-size N] [--batch-size N] [--max-contacts N] [--resume-token T] [--max-resumes N]
  [--jwt-file FILE] [--app-id ID] [--proto-dir DIR (default: this repository's proto/)]`;

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
  return values;
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

// One call: prints its contacts and returns how it ended ({code, details}).
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
    return { code: error.code, details: error.details };
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
  const definition = protoLoader.loadSync('contacts/v1/contacts.proto', {
    includeDirs: [flags['proto-dir']], keepCase: true, longs: String, defaults: true,
  });
  const { ContactService } = grpc.loadPackageDefinition(definition).contacts.v1;
  // Quick reconnects (as GatewayChannelArguments in C++), so a resume finds a restarted gateway.
  const client = new ContactService(flags.target, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 << 20,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 2000,
  });
  const metadata = new grpc.Metadata();
  if (flags['jwt-file']) metadata.set('auth', fs.readFileSync(flags['jwt-file'], 'utf8').trim());
  if (flags['app-id']) metadata.set('iid', flags['app-id']);

  const request = {
    stream_id: flags['stream-id'], contact_list_id: flags['list-id'], account_id: flags['account-id'],
    page_size: flags['page-size'], max_batch_size: flags['batch-size'], max_contacts: flags['max-contacts'],
  };
  const state = { printed: 0, withoutProgress: 0, token: flags['resume-token'] };
  let resumes = 0;
  let status;
  for (;;) {
    status = await callOnce(client, { ...request, resume_token: state.token }, metadata, state);
    if (status.code !== grpc.status.UNAVAILABLE || state.withoutProgress >= flags['max-resumes']) break;
    state.withoutProgress++;
    resumes++;
    const wait = backoffSeconds(state.withoutProgress);
    console.error(`resuming after UNAVAILABLE (${status.details}) in ${wait.toFixed(2)}s, ` +
                  `${state.printed} contacts so far`);
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
  }
  client.close();
  if (status.code !== grpc.status.OK) {
    console.error(`stream ended: ${grpc.status[status.code]}: ${status.details}`);
  }
  console.error(`${state.printed} contacts, ${resumes} resumes` +
                (status.code !== grpc.status.OK ? `; resume token: ${state.token}` : ''));
  return status.code;
}

main().then((code) => { process.exitCode = code; });
