// An S3-compatible object store for tests that checks every request's SigV4
// signature the way S3 does, recomputed with AWS's own signer
// (@smithy/signature-v4): header-signed requests (Authorization) and presigned
// URLs (X-Amz-Signature) alike, with presigned URLs refused once expired. A
// wrong signature gets 403 SignatureDoesNotMatch in S3's XML error shape.
// Objects live in memory, path-style: /<bucket>/<key>.
//
// usage: node s3_gate.cjs LOG_FILE
// env:   S3_BUCKET, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION (default us-east-1)
// Test hooks (not S3): GET /__objects lists the keys with their sizes and PUT
// counts; POST /__advance?seconds=N moves the gate's clock forward.
// Prints "listening <port>" once it accepts connections.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const { SignatureV4 } = require('@smithy/signature-v4');
const { Sha256 } = require('@aws-crypto/sha256-js');

const logFile = process.argv[2];
const bucket = process.env.S3_BUCKET;
const accessKeyId = process.env.S3_ACCESS_KEY;
const region = process.env.S3_REGION || 'us-east-1';
const signer = new SignatureV4({
  credentials: { accessKeyId, secretAccessKey: process.env.S3_SECRET_KEY },
  region, service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: true,
});
const objects = new Map();  // key -> { body, contentType, puts }
let clockOffset = 0;        // seconds added to the real clock
const now = () => new Date(Date.now() + clockOffset * 1000);

function amzDate(s) {  // 20261130T181500Z
  if (!/^\d{8}T\d{6}Z$/.test(s || '')) return null;
  return new Date(Date.UTC(+s.slice(0, 4), +s.slice(4, 6) - 1, +s.slice(6, 8),
                           +s.slice(9, 11), +s.slice(11, 13), +s.slice(13, 15)));
}

function fail(res, status, code, message) {
  res.writeHead(status, { 'Content-Type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
          `<Message>${message}</Message></Error>`);
  return { status, code };
}

// The request as smithy's signer takes it, with only the given headers.
function asSmithy(req, path, query, headers, body) {
  const [hostname, port] = req.headers.host.split(':');
  return { method: req.method, protocol: 'http:', hostname, port: port ? +port : undefined,
           path, query, headers, body };
}

async function check(req, path, params, body) {
  if (params.has('X-Amz-Signature')) {  // presigned
    const [key, date, reg, service] = (params.get('X-Amz-Credential') || '').split('/');
    if (key !== accessKeyId) return ['InvalidAccessKeyId', 'The AWS Access Key Id does not exist'];
    const signedAt = amzDate(params.get('X-Amz-Date'));
    const expires = +params.get('X-Amz-Expires');
    if (!signedAt || !(expires >= 1 && expires <= 604800) || reg !== region || service !== 's3' ||
        params.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256' ||
        params.get('X-Amz-SignedHeaders') !== 'host' || date !== params.get('X-Amz-Date').slice(0, 8))
      return ['AuthorizationQueryParametersError', 'malformed presigned query'];
    if (now() > new Date(signedAt.getTime() + expires * 1000))
      return ['AccessDenied', 'Request has expired'];
    const query = {};
    for (const [k, v] of params) if (!k.startsWith('X-Amz-')) query[k] = v;
    // As AWS's S3 presigner does: the payload is UNSIGNED-PAYLOAD, host alone is
    // signed (this reproduces AWS's documented presigned-URL example).
    const headers = { host: req.headers.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
    const only = new Set(['x-amz-content-sha256']);
    const signed = await signer.presign(asSmithy(req, path, query, headers), {
      signingDate: signedAt, expiresIn: expires, unhoistableHeaders: only, unsignableHeaders: only });
    if (signed.query['X-Amz-Signature'] !== params.get('X-Amz-Signature'))
      return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
    return null;
  }
  const auth = req.headers.authorization || '';
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) return ['AccessDenied', 'no or malformed Authorization'];
  const [key, date, reg, service] = m[1].split('/');
  if (key !== accessKeyId) return ['InvalidAccessKeyId', 'The AWS Access Key Id does not exist'];
  const signedAt = amzDate(req.headers['x-amz-date']);
  if (!signedAt || reg !== region || service !== 's3' || date !== req.headers['x-amz-date'].slice(0, 8))
    return ['AuthorizationHeaderMalformed', 'bad credential scope or x-amz-date'];
  if (Math.abs(now() - signedAt) > 15 * 60 * 1000)
    return ['RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'];
  const names = m[2].split(';');
  if (!names.includes('host')) return ['AccessDenied', 'host must be signed'];
  const headers = {};
  for (const n of names) headers[n] = req.headers[n];
  const payloadHash = req.headers['x-amz-content-sha256'];
  if (!payloadHash || !names.includes('x-amz-content-sha256'))
    return ['InvalidRequest', 'Missing required header for this request: x-amz-content-sha256'];
  if (payloadHash !== 'UNSIGNED-PAYLOAD' &&
      payloadHash !== crypto.createHash('sha256').update(body).digest('hex'))
    return ['XAmzContentSHA256Mismatch', 'The provided x-amz-content-sha256 header does not match what was computed.'];
  const query = Object.fromEntries(params);
  // Exactly the headers the client signed (smithy would leave out some, e.g. user-agent).
  const signed = await signer.sign(asSmithy(req, path, query, headers, body),
                                   { signingDate: signedAt, signableHeaders: new Set(names) });
  const expected = /Signature=([0-9a-f]{64})/.exec(signed.headers.authorization)[1];
  if (expected !== m[3])
    return ['SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.'];
  return null;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks);
    const [path, rawQuery = ''] = req.url.split('?');
    const params = new URLSearchParams(rawQuery);
    const entry = { method: req.method, path, presigned: params.has('X-Amz-Signature') };
    let result;
    try {
      if (path === '/__objects') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(Object.fromEntries(
          [...objects].map(([k, o]) => [k, { bytes: o.body.length, puts: o.puts, content_type: o.contentType }]))));
        return;
      }
      if (path === '/__advance') {
        clockOffset += +params.get('seconds');
        res.writeHead(204).end();
        return;
      }
      const problem = await check(req, path, params, body);
      if (problem) {
        result = fail(res, 403, problem[0], problem[1]);
      } else if (!path.startsWith(`/${bucket}/`)) {
        result = fail(res, 404, 'NoSuchBucket', 'The specified bucket does not exist');
      } else {
        const key = decodeURIComponent(path.slice(bucket.length + 2));
        if (req.method === 'PUT') {
          const old = objects.get(key);
          objects.set(key, { body, contentType: req.headers['content-type'], puts: (old ? old.puts : 0) + 1 });
          res.writeHead(200, { ETag: `"${crypto.createHash('md5').update(body).digest('hex')}"` });
          res.end();
          result = { status: 200 };
        } else if (req.method === 'GET') {
          const o = objects.get(key);
          if (!o) {
            result = fail(res, 404, 'NoSuchKey', 'The specified key does not exist.');
          } else {
            res.writeHead(200, { 'Content-Type': o.contentType, 'Content-Length': o.body.length });
            res.end(o.body);
            result = { status: 200 };
          }
        } else {
          result = fail(res, 405, 'MethodNotAllowed', 'The specified method is not allowed.');
        }
      }
    } catch (e) {
      result = fail(res, 500, 'InternalError', String(e.message || e));
    }
    fs.appendFileSync(logFile, JSON.stringify(Object.assign(entry, result)) + '\n');
  });
});
server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
