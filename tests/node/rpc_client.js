// A JSON-RPC 2.0 client over length-prefixed frames (a 4-byte big-endian
// length, then one UTF-8 JSON object), written with nothing but Node's `net`
// module: an implementation that shares no code with the rpc example, to
// check that they speak the same wire format. Run by tests/rpc_node.rs.
//
//   node tests/node/rpc_client.js 127.0.0.1:4000
//
// Prints one `ok LABEL` line per reply that matched byte for byte, then
// `all N replies matched`, and exits 0. Exits 1 on a mismatch, 2 when the
// replies do not all come within 10 s, 3 on a connection error.
'use strict';

const net = require('net');

const target = process.argv[2] || '127.0.0.1:4000';
const colon = target.lastIndexOf(':');
const host = target.slice(0, colon);
const port = Number(target.slice(colon + 1));

// Each check: a request (an object, serialised by JSON.stringify, or raw
// text) and the exact reply text expected. A request with `reply: null` is a
// notification: nothing comes back for it.
const checks = [
  {
    label: 'echo of an object with non-ASCII text',
    send: { jsonrpc: '2.0', id: 1, method: 'echo', params: { hello: 'wörld 🦀', n: [1, 2.5, null, true] } },
    reply: '{"jsonrpc":"2.0","id":1,"result":{"hello":"wörld 🦀","n":[1,2.5,null,true]}}',
  },
  {
    label: 'echo with a string id and no params',
    send: { jsonrpc: '2.0', id: 'req-2', method: 'echo' },
    reply: '{"jsonrpc":"2.0","id":"req-2","result":null}',
  },
  {
    label: 'a notification (no reply)',
    send: { jsonrpc: '2.0', method: 'echo', params: 'nobody answers' },
    reply: null,
  },
  {
    label: 'add of integers',
    send: { jsonrpc: '2.0', id: 3, method: 'add', params: [1, 2, 3] },
    reply: '{"jsonrpc":"2.0","id":3,"result":6}',
  },
  {
    label: 'add of floats',
    send: { jsonrpc: '2.0', id: 4, method: 'add', params: [0.5, 0.25] },
    reply: '{"jsonrpc":"2.0","id":4,"result":0.75}',
  },
  {
    label: 'add with id null',
    send: { jsonrpc: '2.0', id: null, method: 'add', params: [-10, 4] },
    reply: '{"jsonrpc":"2.0","id":null,"result":-6}',
  },
  {
    label: 'add of a string (invalid params)',
    send: { jsonrpc: '2.0', id: 5, method: 'add', params: ['1'] },
    reply: '{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"Invalid params"}}',
  },
  {
    label: 'a batch (invalid request)',
    send: [{ jsonrpc: '2.0', id: 6, method: 'echo' }],
    reply: '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}',
  },
  {
    label: 'not JSON (parse error)',
    send: '{"jsonrpc":',
    reply: '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}',
  },
];

/** One request as a frame: the byte length (not the character count) first. */
function frame(request) {
  const text = typeof request === 'string' ? request : JSON.stringify(request);
  const body = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

const expected = checks.filter((c) => c.reply !== null);
let received = Buffer.alloc(0);
let matched = 0;

const timer = setTimeout(() => {
  console.log(`timed out: ${matched} of ${expected.length} replies received`);
  process.exit(2);
}, 10000);

const socket = net.connect({ host, port }, () => {
  const frames = Buffer.concat(checks.map((c) => frame(c.send)));
  // The first frame in three pieces (its header split), the rest pipelined
  // in one write: the server must put frames together across reads.
  const first = frame(checks[0].send).length;
  socket.write(frames.subarray(0, 2));
  setTimeout(() => {
    socket.write(frames.subarray(2, first - 5));
    setTimeout(() => socket.write(frames.subarray(first - 5)), 20);
  }, 20);
});

socket.on('data', (chunk) => {
  received = Buffer.concat([received, chunk]);
  while (received.length >= 4) {
    const length = received.readUInt32BE(0);
    if (received.length < 4 + length) {
      break;
    }
    const text = received.subarray(4, 4 + length).toString('utf8');
    received = received.subarray(4 + length);
    const check = expected[matched];
    if (check === undefined) {
      console.log(`FAIL: an unexpected extra reply: ${text}`);
      process.exit(1);
    }
    JSON.parse(text); // every reply is JSON
    if (text !== check.reply) {
      console.log(`FAIL ${check.label}\n  expected ${check.reply}\n  got      ${text}`);
      process.exit(1);
    }
    console.log(`ok ${check.label}`);
    matched += 1;
    if (matched === expected.length) {
      console.log(`all ${matched} replies matched`);
      clearTimeout(timer);
      socket.end();
    }
  }
});

socket.on('error', (e) => {
  console.log(`connection error: ${e.message}`);
  process.exit(3);
});
