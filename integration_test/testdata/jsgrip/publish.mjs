// publish.mjs publishes with @fanoutio/grip's Publisher, for
// integration_test/jsgrip_test.go.
//
// Usage: node publish.mjs '<request JSON>'
//
//   {"config": <IGripConfig, e.g. {"control_uri": "...", "control_iss": "...", "key": "..."}>,
//    "channel": "<channel>",
//    "formats": [<format>, ...]}
//
// where each format is one of
//
//   {"stream": "<content>"}                      -> new HttpStreamFormat(content)
//   {"streamBase64": "<b64>"}                    -> new HttpStreamFormat(Uint8Array)
//   {"streamClose": true}                        -> new HttpStreamFormat(null, true)
//   {"response": {code, reason, headers, body}}  -> new HttpResponseFormat({...})
//   {"responseBase64": {code, ..., body: "<b64>"}} -> same, body as Uint8Array
//
// and all of them go out as one item via publisher.publishFormats.
//
// It prints one JSON line and exits 0 whatever the publish outcome:
//   {"ok": true, "authorization": "<header the library sent, or empty>"}
//   {"ok": false, "statusCode": N, "message": "...", "authorization": "..."}
// A crash (bad request JSON, library missing) exits non-zero.

import { Publisher, PublishException, HttpStreamFormat, HttpResponseFormat } from '@fanoutio/grip';

const req = JSON.parse(process.argv[2] ?? '');

function toFormat(f) {
  if ('stream' in f) return new HttpStreamFormat(f.stream);
  if ('streamBase64' in f) return new HttpStreamFormat(new Uint8Array(Buffer.from(f.streamBase64, 'base64')));
  if ('streamClose' in f) return new HttpStreamFormat(null, true);
  if ('response' in f) return new HttpResponseFormat(f.response);
  if ('responseBase64' in f) {
    const r = f.responseBase64;
    return new HttpResponseFormat({ ...r, body: new Uint8Array(Buffer.from(r.body, 'base64')) });
  }
  throw new Error(`unknown format ${JSON.stringify(f)}`);
}

// The library's fetch override lets the test see which authorization the
// library chose (none, the key as a bearer token, or a JWT) without
// changing what it sends.
let authorization = '';
const recordingFetch = (url, init) => {
  authorization = init?.headers?.Authorization ?? '';
  return fetch(url, init);
};

const publisher = new Publisher(req.config, { fetch: recordingFetch });
let out;
try {
  await publisher.publishFormats(req.channel, req.formats.map(toFormat));
  out = { ok: true, authorization };
} catch (err) {
  if (!(err instanceof PublishException)) throw err;
  out = {
    ok: false,
    statusCode: err.context?.statusCode ?? 0,
    message: String(err.message),
    authorization,
  };
}
process.stdout.write(JSON.stringify(out) + '\n');
