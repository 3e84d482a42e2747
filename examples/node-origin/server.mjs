// A GRIP origin for caddy-grip written with @fanoutio/serve-grip (the
// connect-style middleware) and @fanoutio/grip, on node:http. Caddy holds
// the clients; this server only answers short HTTP requests:
//
//   GET /events/<channel>  Server-Sent Events: held as a stream on <channel>
//   GET /poll/<channel>    a long-poll: held until a publish, or 30 s
//   /chat                  a WebSocket chat room, over WebSocket-over-HTTP:
//                          each connection joins channel "room", and each
//                          message a client sends is published to "room"
//   GET /                  the chat page (chat.html)
//
// Environment (run.sh sets them):
//   PORT              where to listen on 127.0.0.1 (3001)
//   GRIP_CONTROL_URI  caddy-grip's grip_publish route (http://127.0.0.1:8401/)
//   GRIP_SIG_KEY      the sig_key Caddy signs Grip-Sig with (required)

import http from 'node:http';
import { readFileSync } from 'node:fs';
import { ServeGrip } from '@fanoutio/serve-grip';
import { WebSocketMessageFormat, validateSig } from '@fanoutio/grip';

const port = Number(process.env.PORT ?? 3001);
const controlURI = process.env.GRIP_CONTROL_URI ?? 'http://127.0.0.1:8401/';
const sigKey = process.env.GRIP_SIG_KEY ?? '';
const sigIss = 'caddy-grip'; // grip's default sig_iss
if (sigKey === '') {
  console.error('GRIP_SIG_KEY must be set to the sig_key of the Caddyfile');
  process.exit(1);
}

const chatChannel = 'room';
const chatPage = readFileSync(new URL('./chat.html', import.meta.url));

// serve-grip sees a request as coming through a GRIP proxy when it carries a
// Grip-Sig, which Caddy sends only with sig_key set: that is why the
// Caddyfile sets one. control_uri is where getPublisher() publishes.
const serveGrip = new ServeGrip({
  grip: { control_uri: controlURI, verify_key: sigKey, verify_iss: sigIss },
  gripProxyRequired: true,
});

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
}

async function handle(req, res) {
  if (!(await serveGrip.run(req, res))) return; // it has answered (501 without a Grip-Sig)
  // serve-grip 2.0.0 does not await its signature check, so any Grip-Sig
  // passes it: check the signature here.
  if (!(await validateSig(req.headers['grip-sig'], sigKey, sigIss))) {
    send(res, 403, 'text/plain', 'invalid Grip-Sig\n');
    return;
  }
  const url = new URL(req.url, 'http://origin.invalid');
  const ws = req.grip.wsContext;
  if (url.pathname === '/chat') {
    if (ws == null) {
      send(res, 400, 'text/plain', 'connect with a WebSocket client (through Caddy), or open / in a browser\n');
      return;
    }
    await chat(ws, res);
    return;
  }
  const held = req.method === 'GET' && url.pathname.match(/^\/(events|poll)\/([^/]+)$/);
  if (held) {
    let channel;
    try {
      channel = decodeURIComponent(held[2]);
    } catch {
      send(res, 400, 'text/plain', 'bad channel name\n');
      return;
    }
    const instruct = res.grip.startInstruct();
    instruct.addChannel(channel);
    if (held[1] === 'events') {
      // Caddy keeps the response open and writes each http-stream item
      // published to the channel into it; a comment every 20 s keeps it alive.
      instruct.setHoldStream();
      instruct.setKeepAlive(':\n\n', 20);
      send(res, 200, 'text/event-stream', `: subscribed to ${channel}\n\n`);
    } else {
      // Caddy answers with the first http-response item published to the
      // channel, or with this body after 30 s.
      instruct.setHoldLongPoll(30);
      send(res, 200, 'text/plain; charset=utf-8', `no news on ${channel}\n`);
    }
    return;
  }
  if (req.method === 'GET' && url.pathname === '/') {
    send(res, 200, 'text/html; charset=utf-8', chatPage);
    return;
  }
  send(res, 404, 'text/plain', 'not found\n');
}

// chat handles one WebSocket-over-HTTP request: the client's events are in
// ws, and what ws is told to send goes back in the answer (serve-grip writes
// the events and the headers, Sec-WebSocket-Extensions: grip included, on
// res.end).
async function chat(ws, res) {
  if (ws.isOpening()) {
    ws.accept();
    ws.subscribe(chatChannel);
    ws.send(`welcome to ${chatChannel}`);
  }
  while (ws.canRecv()) {
    let message;
    try {
      message = ws.recv();
    } catch {
      break; // DISCONNECT: the client is gone and the answer is not read
    }
    if (message == null) {
      ws.close(ws.closeCode ?? 1000); // the client closed: close back
      break;
    }
    try {
      await serveGrip.getPublisher().publishFormats(chatChannel, new WebSocketMessageFormat(message));
    } catch (err) {
      console.error('publishing a chat message:', err.message);
      ws.send(`(not sent: ${err.message})`);
    }
  }
  res.writeHead(200);
  res.end();
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
    else res.end();
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log(`node-origin listening on 127.0.0.1:${port}, publishing to ${controlURI}`);
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
