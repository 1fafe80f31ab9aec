// A small static server for www/ with HTTP Range support (the engine reads models by range).
// `/models/*` is served from the repository's models/ folder, `/fixtures/*` from target/fixtures/
// (the random-weight test models that ./build.sh fixtures writes). Loopback only.
//   node www/serve.mjs [port]
// With AIGC_SERVE_TEST=1 (tests/browser/cache.mjs only) it also records every /models/ and
// /fixtures/ request,
// read back by GET /__test/log (?clear=1 empties it), and GET /__test/cut?after=N makes the
// next /models/ body longer than N bytes break off after N bytes (a dropped connection).
import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const WWW = resolve(fileURLToPath(new URL('.', import.meta.url)));
const MOUNTS = [[`${sep}models${sep}`, resolve(WWW, '..', 'models')], [`${sep}fixtures${sep}`, resolve(WWW, '..', 'target', 'fixtures')]];
const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json', '.png': 'image/png',
  '.svg': 'image/svg+xml', '.ts': 'text/plain; charset=utf-8',
};

function resolvePath(urlPath) {
  const clean = normalize(decodeURIComponent(urlPath.split('?')[0]));
  const mount = MOUNTS.find(([prefix]) => clean.startsWith(prefix));
  const [root, rel] = mount ? [mount[1], clean.slice(mount[0].length - 1)] : [WWW, clean];
  const full = resolve(join(root, rel === sep || rel === '' ? 'index.html' : rel));
  return full.startsWith(root) ? full : null;
}

const TEST = process.env.AIGC_SERVE_TEST === '1';
const log = [];
let cutAfter = null;

function testHook(req, res) {
  const url = new URL(req.url || '/', 'http://x');
  if (url.pathname === '/__test/log') {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify(log));
    if (url.searchParams.has('clear')) log.length = 0;
    return true;
  }
  if (url.pathname === '/__test/cut') {
    cutAfter = Number(url.searchParams.get('after'));
    res.writeHead(204);
    res.end();
    return true;
  }
  if (url.pathname.startsWith('/models/') || url.pathname.startsWith('/fixtures/')) log.push({ method: req.method, path: url.pathname, range: req.headers.range ?? null });
  return false;
}

// Stream [start, end] of the file, or break the connection off early when a cut is pending.
function send(res, path, start, end) {
  if (end < start) { res.end(); return; } // an empty file
  if (TEST && cutAfter != null && end - start + 1 > cutAfter) {
    const stop = start + cutAfter - 1;
    cutAfter = null;
    const part = createReadStream(path, { start, end: stop });
    part.pipe(res, { end: false });
    part.on('end', () => res.socket?.end()); // after the bytes written so far are flushed
    return;
  }
  createReadStream(path, { start, end }).pipe(res);
}

const server = createServer((req, res) => {
  if (TEST && testHook(req, res)) return;
  const path = resolvePath(req.url || '/');
  let st;
  try { st = path && statSync(path); } catch { st = null; }
  if (!st || !st.isFile()) { res.writeHead(404); res.end('not found'); return; }
  const headers = { 'Content-Type': TYPES[extname(path)] || 'application/octet-stream', 'Accept-Ranges': 'bytes', 'Cache-Control': 'no-cache' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
  if (m) {
    let start = m[1] === '' ? Math.max(0, st.size - Number(m[2])) : Number(m[1]);
    let end = m[1] !== '' && m[2] !== '' ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
    if (start > end || start >= st.size) { res.writeHead(416, { 'Content-Range': `bytes */${st.size}` }); res.end(); return; }
    res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${st.size}`, 'Content-Length': end - start + 1 });
    if (req.method === 'HEAD') { res.end(); return; }
    send(res, path, start, end);
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': st.size });
  if (req.method === 'HEAD') { res.end(); return; }
  send(res, path, 0, st.size - 1);
});

const port = Number(process.argv[2] || process.env.PORT || 8080);
server.listen(port, '127.0.0.1', () => console.log(`aigc: serving www/ at http://127.0.0.1:${port}/`));
