// A webhook receiver written as a receiving team would write it, on the official
// libraries: `new Webhook(secret).verify(body, headers)` from the npm
// `standardwebhooks` package and from `svix`, exactly as their READMEs show. For
// each delivery it records which secrets each library accepted, checks the audio
// against the event's sha256 with node:crypto, and writes the audio decoded from
// `audio_base64` to a file for independent decoders.
//
// usage: node standard_webhooks_receiver.cjs OUT_DIR
// env:   SECRETS="whsec_a whsec_b"  (each is tried on its own)
//        FAIL_FIRST="<task id>#<item>"  (answered 503 the first time)
// Prints "listening <port>" once it accepts connections.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const standardwebhooks = require('standardwebhooks');
const svix = require('svix');

const outDir = process.argv[2];
const secrets = (process.env.SECRETS || '').split(' ').filter(Boolean);
const failFirst = process.env.FAIL_FIRST || '';
const failed = new Set();
const log = path.join(outDir, 'received.jsonl');

function verifiedBy(library, body, headers) {
  return secrets.map((secret) => {
    try {
      new library.Webhook(secret).verify(body, headers);
      return true;
    } catch (e) {
      return String(e.message || e);
    }
  });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const body = raw.toString('utf8');  // what a receiver hands the library
    const record = {
      webhook_id: req.headers['webhook-id'],
      content_type: req.headers['content-type'],
      user_agent: req.headers['user-agent'],
      standardwebhooks: verifiedBy(standardwebhooks, body, req.headers),
      svix: verifiedBy(svix, body, req.headers),
    };
    let status = 204;
    try {
      const event = JSON.parse(body);
      const data = event.data;
      record.type = event.type;
      record.timestamp = event.timestamp;
      record.data = Object.assign({}, data, { audio_base64: undefined });
      // With object storage the event links to the audio instead.
      const audio = Buffer.from(data.audio_base64 || '', 'base64');
      record.sha256_matches = crypto.createHash('sha256').update(audio).digest('hex') === data.sha256;
      record.bytes_match = audio.length === data.bytes;
      const key = `${data.task_id}#${data.item_index}`;
      if (key === failFirst && !failed.has(key)) {
        failed.add(key);
        status = 503;
      } else if (data.audio_base64 !== undefined) {
        record.file = `${data.task_id}_${data.item_index}.${data.format}`;
        fs.writeFileSync(path.join(outDir, record.file), audio);
      }
    } catch (e) {
      record.error = String(e.message || e);
    }
    record.status = status;
    fs.appendFileSync(log, JSON.stringify(record) + '\n');
    res.writeHead(status);
    res.end();
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
