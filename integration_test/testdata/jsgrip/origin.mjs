// origin.mjs is a GRIP origin written the way @fanoutio/grip's README says,
// for integration_test/jsgrip_test.go. It listens on 127.0.0.1 (a free
// port) and prints {"port": N} as its first stdout line.
//
// Environment:
//   SIG_KEY  the proxy's sig_key (a plain HS256 secret)
//   SIG_ISS  the proxy's sig_iss
//
// Every request's Grip-Sig is checked with Publisher.validateGripSig
// (verify_key SIG_KEY, verify_iss SIG_ISS) and with validateSig; the
// X-Grip-Sig-Valid response header says whether both accepted it. An
// unsigned or badly signed request is refused with 403.
//
// Routes, for a valid request:
//   GET /stream?ch=A[&ch=B][&ka=N]  hold stream on the channels (Grip-Keep-Alive
//                                    ":ka\n" every N seconds when ka is given),
//                                    initial body "welcome\n"
//   GET /poll?ch=A[&ch=B][&prev=ID] hold response on the channels (the last one
//                                    carries prev-id ID when prev is given),
//                                    timeout body "timed out\n"
//   anything else                   404

import http from 'node:http';
import { Channel, GripInstruct, Publisher, validateSig } from '@fanoutio/grip';

const sigKey = process.env.SIG_KEY ?? '';
const sigIss = process.env.SIG_ISS ?? '';

// Only validateGripSig is used from this publisher: its control_uri is
// never contacted.
const publisher = new Publisher({
  control_uri: 'http://127.0.0.1:1/',
  verify_key: sigKey,
  verify_iss: sigIss,
});

async function sigValid(gripSig) {
  if (gripSig == null || sigKey === '') return false;
  const { isProxied, isSigned } = await publisher.validateGripSig(gripSig);
  return isProxied && isSigned && (await validateSig(gripSig, sigKey, sigIss));
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://origin.invalid');
  const valid = await sigValid(req.headers['grip-sig']);
  if (!valid) {
    res.writeHead(403, { 'Content-Type': 'text/plain', 'X-Grip-Sig-Valid': 'false' });
    res.end('invalid Grip-Sig\n');
    return;
  }
  const channels = url.searchParams.getAll('ch');
  const instruct = new GripInstruct();
  let body;
  switch (url.pathname) {
    case '/stream': {
      instruct.addChannel(channels);
      instruct.setHoldStream();
      const ka = url.searchParams.get('ka');
      if (ka != null) instruct.setKeepAlive(':ka\n', Number(ka));
      instruct.meta = { user: 'alice "a" smith' };
      body = 'welcome\n';
      break;
    }
    case '/poll': {
      const prev = url.searchParams.get('prev');
      const last = channels.pop();
      instruct.addChannel([...channels, new Channel(last, prev)]);
      instruct.setHoldLongPoll();
      body = 'timed out\n';
      break;
    }
    default:
      res.writeHead(404, { 'Content-Type': 'text/plain', 'X-Grip-Sig-Valid': 'true' });
      res.end('not found\n');
      return;
  }
  res.writeHead(200, {
    ...instruct.toHeaders(),
    'Content-Type': 'text/plain',
    'Content-Length': String(Buffer.byteLength(body)),
    'X-Grip-Sig-Valid': 'true',
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    res.writeHead(500, { 'Content-Type': 'text/plain' });
    res.end(String(err) + '\n');
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

// The test ends the origin by closing its stdin (or killing it).
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
