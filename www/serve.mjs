// A small static server for www/ with HTTP Range support (the engine reads models by range).
// `/models/*` is served from the repository's models/ folder, `/fixtures/*` from target/fixtures/
// (the random-weight test models that ./build.sh fixtures writes). Loopback only.
//   node www/serve.mjs [port]
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

const server = createServer((req, res) => {
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
    createReadStream(path, { start, end }).pipe(res);
    return;
  }
  res.writeHead(200, { ...headers, 'Content-Length': st.size });
  if (req.method === 'HEAD') { res.end(); return; }
  createReadStream(path).pipe(res);
});

const port = Number(process.argv[2] || process.env.PORT || 8080);
server.listen(port, '127.0.0.1', () => console.log(`aigc: serving www/ at http://127.0.0.1:${port}/`));
