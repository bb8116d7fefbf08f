// Ed25519 room-token keys and tokens, made with Node's own crypto so tests do not trust the code under test.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A fresh key pair: { privatePem, publicPem, kid, privateKey }. */
export function generateKeyPair() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  // RFC 7638: required members in lexicographic order.
  const kid = b64url(crypto.createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`).digest());
  return {
    privateKey,
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }),
    kid,
    x: jwk.x,
  };
}

/** Writes `text` to a new temporary file and returns its path. */
export function tempFile(name, text) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-test-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** Builds a compact JWS from a header and payload, signed by `sign(bytes)` (or unsigned when it is null). */
export function jws(header, payload, sign) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const sig = sign ? b64url(sign(Buffer.from(input))) : '';
  return `${input}.${sig}`;
}

let counter = 0;
/** Default room claims for `sub` in `room`, valid for 5 minutes. */
export function claims({ sub = 'user-1', name = 'Ann', room = 'General', sid, ttl = 300, ...rest } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: 'chat-web', aud: 'chat-gateway', sub, name, room,
    iat: now, exp: now + ttl, jti: `jti-${process.pid}-${++counter}`,
    ...(sid ? { sid } : {}),
    ...rest,
  };
}

/** A valid EdDSA room token signed by `keys`. */
export function mint(keys, claimOverrides = {}, headerOverrides = {}) {
  return jws({ alg: 'EdDSA', typ: 'JWT', kid: keys.kid, ...headerOverrides }, claims(claimOverrides), (b) => crypto.sign(null, b, keys.privateKey));
}
