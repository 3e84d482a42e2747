// wsorigin.mjs is a WebSocket-over-HTTP origin written the way
// @fanoutio/grip's README says (isNodeReqWsOverHttp,
// getWebSocketContextFromNodeReq, WebSocketContext, encodeWebSocketEvents),
// for integration_test/jsgrip_ws_test.go. It listens on 127.0.0.1 (a free
// port) and prints {"port": N} as its first stdout line.
//
// Environment:
//   SIG_KEY      the proxy's sig_key (a plain HS256 secret)
//   SIG_ISS      the proxy's sig_iss
//   CONTROL_URI  the proxy's publish endpoint, for /_test/publish
//
// Every request except /_test/* must carry a Grip-Sig that
// Publisher.validateGripSig and validateSig accept for SIG_KEY and SIG_ISS,
// and must be WebSocket-over-HTTP (isNodeReqWsOverHttp); otherwise it is
// refused with 403 ("invalid Grip-Sig\n") or 400. Every answer carries
// X-Grip-Sig-Valid.
//
// WebSocket behaviour, per connection:
//   OPEN     accept; meta "user" := ?user= (or "anonymous"); subscribe to
//            every ?ch=; send "welcome <user>"
//   TEXT     "close"  -> close with code 4002 (the rest of the batch is ignored)
//            "whoami" -> send "you are <meta user, or nobody>"
//            "forget" -> delete meta "user"; send "forgotten"
//            other    -> echo it
//   BINARY   echo it as binary
//   CLOSE    close back (wsContext.close(), as the README does)
//
// Test routes, reached directly (not through the proxy), unsigned:
//   GET  /_test/log      JSON array, one entry per request above:
//                        {id, sigValid, wsOverHttp, events: [type...],
//                         meta: {...as received}, closeCode}
//   POST /_test/publish  body {"channel", and one of "text", "binaryBase64",
//                        "close" (with optional "code")}: publishes one
//                        WebSocketMessageFormat with the library's Publisher;
//                        answers {"ok": true} or {"ok": false, "statusCode",
//                        "message"}

import http from 'node:http';
import {
  Publisher,
  PublishException,
  WebSocketMessageFormat,
  encodeWebSocketEvents,
  getWebSocketContextFromNodeReq,
  isNodeReqWsOverHttp,
  validateSig,
} from '@fanoutio/grip';

const sigKey = process.env.SIG_KEY ?? '';
const sigIss = process.env.SIG_ISS ?? '';

// One publisher validates Grip-Sig (verify_*) and publishes (control_uri).
const publisher = new Publisher({
  control_uri: process.env.CONTROL_URI ?? 'http://127.0.0.1:1/',
  verify_key: sigKey,
  verify_iss: sigIss,
});

const log = [];

async function sigValid(gripSig) {
  if (gripSig == null || sigKey === '') return false;
  const { isProxied, isSigned } = await publisher.validateGripSig(gripSig);
  return isProxied && isSigned && (await validateSig(gripSig, sigKey, sigIss));
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts)));
    req.on('error', reject);
  });
}

function sendJSON(res, status, obj) {
  const body = JSON.stringify(obj) + '\n';
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

async function testPublish(req, res) {
  const r = JSON.parse((await readBody(req)).toString('utf8'));
  let format;
  if ('text' in r) format = new WebSocketMessageFormat(r.text);
  else if ('binaryBase64' in r) format = new WebSocketMessageFormat(new Uint8Array(Buffer.from(r.binaryBase64, 'base64')));
  else if (r.close) format = new WebSocketMessageFormat(null, true, r.code);
  else throw new Error(`unknown publish ${JSON.stringify(r)}`);
  try {
    await publisher.publishFormats(r.channel, format);
    sendJSON(res, 200, { ok: true });
  } catch (err) {
    if (!(err instanceof PublishException)) throw err;
    sendJSON(res, 200, { ok: false, statusCode: err.context?.statusCode ?? 0, message: String(err.message) });
  }
}

async function handleWebSocket(req, res, url, entry) {
  const ws = await getWebSocketContextFromNodeReq(req);
  entry.id = ws.id;
  entry.events = ws._inEvents.map((e) => e.type);
  entry.meta = { ...ws.meta };

  if (ws.isOpening()) {
    ws.accept();
    ws.meta.user = url.searchParams.get('user') ?? 'anonymous';
    for (const ch of url.searchParams.getAll('ch')) ws.subscribe(ch);
    ws.send(`welcome ${ws.meta.user}`);
  }
  loop: while (ws.canRecv()) {
    let message;
    try {
      message = ws.recvRaw();
    } catch (err) {
      // DISCONNECT: the proxy does not read the answer.
      break;
    }
    if (message == null) {
      entry.closeCode = ws.closeCode;
      ws.close();
      break;
    }
    if (message instanceof Uint8Array) {
      ws.sendBinary(message);
      continue;
    }
    switch (message) {
      case 'close':
        ws.close(4002);
        break loop;
      case 'whoami':
        ws.send(`you are ${ws.meta.user ?? 'nobody'}`);
        break;
      case 'forget':
        delete ws.meta.user;
        ws.send('forgotten');
        break;
      default:
        ws.send(message);
    }
  }
  const body = Buffer.from(encodeWebSocketEvents(ws.getOutgoingEvents()));
  res.writeHead(200, {
    ...ws.toHeaders(),
    'Content-Length': String(body.length),
    'X-Grip-Sig-Valid': 'true',
  });
  res.end(body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://origin.invalid');
  if (url.pathname === '/_test/log' && req.method === 'GET') {
    sendJSON(res, 200, log);
    return;
  }
  if (url.pathname === '/_test/publish' && req.method === 'POST') {
    await testPublish(req, res);
    return;
  }
  const entry = { id: req.headers['connection-id'] ?? null, sigValid: false, wsOverHttp: false, events: [], meta: {}, closeCode: null };
  log.push(entry);
  entry.sigValid = await sigValid(req.headers['grip-sig']);
  entry.wsOverHttp = isNodeReqWsOverHttp(req);
  if (!entry.sigValid) {
    res.writeHead(403, { 'Content-Type': 'text/plain', 'X-Grip-Sig-Valid': 'false' });
    res.end('invalid Grip-Sig\n');
    return;
  }
  if (!entry.wsOverHttp) {
    res.writeHead(400, { 'Content-Type': 'text/plain', 'X-Grip-Sig-Valid': 'true' });
    res.end('not WebSocket-over-HTTP\n');
    return;
  }
  await handleWebSocket(req, res, url, entry);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(err) + '\n');
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

// The test ends the origin by closing its stdin (or killing it).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
