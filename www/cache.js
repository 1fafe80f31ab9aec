// The persistent model cache: owns downloading a model once into the browser's storage, resuming
// an interrupted download, checking the stored copy before the engine reads it, and listing and
// deleting entries. Storage itself (OPFS, or the Cache API where OPFS is missing) is
// cache-store.js. Used by aigc.js (Engine.load, Engine.cached, Engine.deleteCached) in the
// context that imported it: the page, not the engine's worker (see aigc.js for why).
//
// An entry is a manifest plus the model's bytes in chunks of CHUNK_SIZE:
//   { version: 1, id, name, url, source: 'url' | 'file', size, chunkSize,
//     chunks: [sha256 hex of chunk 0, 1, … as far as stored], complete,
//     etag, lastModified (the server's validators, or null), created, updated }
// `chunks` only ever lists chunks whose file is fully written, and the manifest is rewritten
// after each chunk, so a download cut off anywhere resumes from the last whole chunk.
//
// On read every chunk's size and SHA-256 is checked (progress phase 'verify'). A mismatch drops
// that chunk and everything after it and downloads them again from the entry's URL (the info
// says `repairedFrom`); if the second check fails too, or the entry came from a File and cannot
// be fetched again, the entry is deleted and CacheCorruptError is thrown.
import { openStore, useBackend } from './cache-store.js';
import { AbortError, AigcError, CacheCorruptError, InvalidOptionError, IoError, StorageQuotaError } from './errors.js';

export { useBackend };
export const CHUNK_SIZE = 16 << 20;
const VERSION = 1;
const PROGRESS_MS = 50;

const hex = (buf) => Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
const sha256 = async (data) => hex(await crypto.subtle.digest('SHA-256', data));
const nChunks = (m) => Math.ceil(m.size / m.chunkSize);
const chunkLen = (m, i) => Math.min(m.chunkSize, m.size - i * m.chunkSize);
const bytesDone = (m) => Math.min(m.size, m.chunks.length * m.chunkSize);
const MB = (n) => `${(n / 1e6).toFixed(1)} MB`;

/** A browser exception as one of our named errors; `what` says which step failed. */
function named(e, what) {
  if (e instanceof AigcError) return e;
  if (e?.name === 'QuotaExceededError') {
    return new StorageQuotaError(`${what}: this site's storage quota is used up (${e.message})`);
  }
  if (e?.name === 'AbortError') return new AbortError('load aborted');
  return new IoError(`${what}: ${e?.name || 'Error'}: ${e?.message ?? e}`);
}

async function readManifest(store, id) {
  let m;
  try {
    m = JSON.parse(await store.readManifest(id));
  } catch {
    return null;
  }
  const ok = m && m.version === VERSION && m.id === id && Number.isSafeInteger(m.size) && m.size > 0
    && Number.isSafeInteger(m.chunkSize) && m.chunkSize > 0 && Array.isArray(m.chunks)
    && m.chunks.length <= nChunks(m) && m.chunks.every((c) => typeof c === 'string' && c.length === 64);
  if (!ok) return null;
  m.complete = m.chunks.length === nChunks(m);
  return m;
}

async function writeManifest(store, m) {
  m.updated = Date.now();
  await store.writeManifest(m.id, JSON.stringify(m));
}

const describe = (store, m) => ({
  name: m.name, url: m.url, size: m.size, complete: m.complete, bytesDone: bytesDone(m),
  created: m.created, backend: store.kind,
});

async function manifests(store) {
  const out = [];
  for (const id of await store.ids()) {
    const m = await readManifest(store, id);
    if (m) out.push(m);
  }
  return out.sort((a, b) => a.created - b.created);
}

/** Every entry, complete or partial: [{name, url, size, complete, bytesDone, created, backend}]. */
export async function list() {
  const store = await openStore();
  try {
    return store ? (await manifests(store)).map((m) => describe(store, m)) : [];
  } catch (e) {
    throw named(e, 'reading the model cache');
  }
}

/** The entry whose name (or URL) is `key`, or null. */
export async function find(key) {
  const store = await openStore();
  try {
    return (store && (await manifests(store)).find((m) => m.name === key || (m.url && m.url === key))) || null;
  } catch (e) {
    throw named(e, 'reading the model cache');
  }
}

/** Delete the entry named `key` (or with that URL). Resolves false when there was none. */
export async function remove(key) {
  const store = await openStore();
  const m = store && await find(key);
  if (!m) return false;
  const release = await lock(m.id);
  try {
    await store.remove(m.id);
  } catch (e) {
    throw named(e, `deleting ${m.name}`);
  } finally {
    release();
  }
  return true;
}

const entryId = async (kind, key) => (await sha256(new TextEncoder().encode(`${kind}:${key}`))).slice(0, 32);

// One writer per entry across tabs and workers of this origin: the lock is held from the first
// look at the manifest until the engine has read the model (the caller calls `release`), so
// another tab can neither write the same chunks at once nor delete the files being read.
async function lock(id, signal) {
  if (!globalThis.navigator?.locks) return () => {};
  let release;
  const held = new Promise((r) => { release = r; });
  await new Promise((granted, failed) => {
    navigator.locks.request(`aigc-cache:${id}`, { signal }, () => { granted(); return held; }).catch(failed);
  });
  return release;
}

let persisting = null;
async function checkQuota(need) {
  // Ask once to be exempt from eviction; browsers may say no (or ask the user), which is fine.
  persisting ??= Promise.resolve(navigator.storage?.persist?.()).catch(() => false);
  const est = await navigator.storage?.estimate?.().catch(() => null);
  if (!est?.quota || typeof est.usage !== 'number') return;
  const free = est.quota - est.usage;
  if (free < need) {
    throw new StorageQuotaError(`the model needs ${MB(need)} of storage, but only ${MB(free)} of this site's quota of ${MB(est.quota)} is free`);
  }
}

async function fetchOrThrow(url, init, what) {
  try {
    // no-store: otherwise the browser's HTTP cache may keep a second copy of the whole model.
    return await fetch(url, { ...init, cache: 'no-store' });
  } catch (e) {
    if (init.signal?.aborted) throw new AbortError('load aborted');
    throw named(e, `${what} ${url}`);
  }
}

/** The file's size and validators, from a one-byte range request (as the engine asks). */
async function probe(url, signal) {
  const r = await fetchOrThrow(url, { headers: { Range: 'bytes=0-0' }, signal }, 'fetch');
  r.body?.cancel().catch(() => {});
  if (r.status !== 206 && r.status !== 200) throw new IoError(`${url}: HTTP ${r.status}`);
  const size = r.status === 206
    ? Number(/\/\s*(\d+)\s*$/.exec(r.headers.get('Content-Range') || '')?.[1])
    : Number(r.headers.get('Content-Length'));
  if (!Number.isSafeInteger(size) || size <= 0) throw new IoError(`${url}: the server did not say how large the file is`);
  return { size, etag: r.headers.get('ETag'), lastModified: r.headers.get('Last-Modified') };
}

async function newManifest(store, id, { name, url, source, size, etag = null, lastModified = null }) {
  // Two URLs ending in the same file name get distinct names (names are what load() accepts).
  const taken = (await manifests(store)).some((o) => o.id !== id && o.name === name);
  return {
    version: VERSION, id, name: taken ? `${name}~${id.slice(0, 6)}` : name, url, source, size,
    chunkSize: CHUNK_SIZE, chunks: [], complete: false, etag, lastModified, created: Date.now(),
  };
}

/**
 * Store the bytes of `body` (a ReadableStream starting `skip` bytes before the entry's first
 * missing chunk) chunk by chunk: hash, write the chunk file, then list it in the manifest.
 */
async function fill(store, m, body, skip, { onProgress, signal }, phase) {
  const reader = body.getReader();
  const last = nChunks(m);
  let index = m.chunks.length;
  let buf = new Uint8Array(chunkLen(m, index));
  let used = 0;
  let reported = 0;
  const report = (force) => {
    const now = performance.now();
    if (!force && now - reported < PROGRESS_MS) return;
    reported = now;
    onProgress?.({ phase, done: index * m.chunkSize + used, total: m.size });
  };
  try {
    report(true);
    while (index < last) {
      if (signal?.aborted) throw new AbortError('load aborted');
      let value;
      try {
        const r = await reader.read();
        if (r.done) break;
        value = r.value;
      } catch (e) {
        throw signal?.aborted ? new AbortError('load aborted') : named(e, `reading ${m.url ?? m.name}`);
      }
      if (skip) {
        const k = Math.min(skip, value.length);
        skip -= k;
        value = value.subarray(k);
      }
      while (value.length) {
        if (index >= last) throw new IoError(`${m.url ?? m.name}: more than the expected ${m.size} bytes`);
        const k = Math.min(value.length, buf.length - used);
        buf.set(value.subarray(0, k), used);
        used += k;
        value = value.subarray(k);
        if (used < buf.length) continue;
        if (signal?.aborted) throw new AbortError('load aborted');
        const hash = await sha256(buf);
        try {
          await store.writeChunk(m.id, index, buf);
          m.chunks.push(hash);
          m.complete = m.chunks.length === last;
          await writeManifest(store, m);
        } catch (e) {
          throw named(e, `storing chunk ${index} of ${m.name}`);
        }
        index++;
        used = 0;
        if (index < last) buf = new Uint8Array(chunkLen(m, index));
        report(true);
      }
      report(false);
    }
    if (index < last) {
      throw new IoError(`${m.url ?? m.name}: the data ended after ${index * m.chunkSize + used} of ${m.size} bytes (the next load resumes at ${bytesDone(m)})`);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Fetch the entry's missing chunks from its URL (a fresh entry when there is none yet). */
async function download(store, id, m, url, opts, stats) {
  const p = await probe(url, opts.signal);
  if (m && (m.size !== p.size || (m.etag && p.etag && m.etag !== p.etag)
      || (m.lastModified && p.lastModified && m.lastModified !== p.lastModified))) {
    await store.remove(id); // the file changed on the server: the stored part is of another version
    m = null;
  }
  if (!m) {
    const { pathname, hostname } = new URL(url);
    const last = pathname.split('/').pop();
    let name = last;
    try {
      name = decodeURIComponent(last);
    } catch {
      // a stray '%' in the URL: keep the name as it is written
    }
    name = opts.name || name || hostname;
    m = await newManifest(store, id, { name, url, source: 'url', ...p });
  }
  const start = bytesDone(m);
  await checkQuota(m.size - start);
  try {
    await writeManifest(store, m);
  } catch (e) {
    throw named(e, `storing the manifest of ${m.name}`);
  }
  const r = await fetchOrThrow(url, { headers: { Range: `bytes=${start}-` }, signal: opts.signal }, 'download');
  let skip = 0;
  if (r.status === 206) {
    const cr = /^bytes\s+(\d+)-\d+\/(\d+)$/.exec(r.headers.get('Content-Range') || '');
    if (!cr || Number(cr[1]) !== start || Number(cr[2]) !== m.size) {
      r.body?.cancel().catch(() => {});
      throw new IoError(`${url}: the server answered range ${start}- with '${r.headers.get('Content-Range')}'`);
    }
  } else if (r.status === 200) {
    skip = start; // a server without Range support sends it all: skip what is stored
  } else {
    r.body?.cancel().catch(() => {});
    throw new IoError(`${url}: HTTP ${r.status}`);
  }
  if (stats.resumedFrom == null) stats.resumedFrom = start;
  const before = bytesDone(m);
  try {
    await fill(store, m, r.body, skip, opts, 'download');
  } finally {
    stats.downloaded += bytesDone(m) - before;
  }
  return m;
}

/** Check every chunk's size and hash; a File of the checked chunks, or the first bad index. */
async function verify(store, m, { onProgress, signal }) {
  const parts = [];
  for (let i = 0; i < nChunks(m); i++) {
    if (signal?.aborted) throw new AbortError('load aborted');
    onProgress?.({ phase: 'verify', done: i * m.chunkSize, total: m.size });
    let blob;
    let hash = null;
    try {
      blob = await store.chunk(m.id, i);
      if (blob && blob.size === chunkLen(m, i)) hash = await sha256(await blob.arrayBuffer());
    } catch {
      hash = null; // unreadable (e.g. NotReadableError): as bad as a wrong hash
    }
    if (hash !== m.chunks[i]) return { bad: i };
    parts.push(blob);
  }
  onProgress?.({ phase: 'verify', done: m.size, total: m.size });
  // The engine reads these very chunk Files. If one changes on disk after this check, the browser
  // makes reading it fail (NotReadableError) rather than return the new bytes.
  return { file: new File(parts, m.name, { type: 'application/octet-stream' }) };
}

async function prepare(store, id, url, opts) {
  const stats = { downloaded: 0, resumedFrom: null, repairedFrom: null };
  const release = await lock(id, opts.signal).catch((e) => { throw named(e, 'waiting for the cache'); });
  try {
    let m = await readManifest(store, id);
    for (let attempt = 0; ; attempt++) {
      if (!m?.complete) {
        if (!url) {
          throw new InvalidOptionError(`${m?.name ?? 'this model'} was only partly stored from a file: load the file again`);
        }
        m = await download(store, id, m, url, opts, stats);
      }
      const v = await verify(store, m, opts);
      if (v.file) {
        const info = { ...describe(store, m), stored: true, ...stats };
        return { file: v.file, info, release };
      }
      if (attempt > 0 || !url) {
        await store.remove(id);
        throw new CacheCorruptError(`the cached copy of ${m.name} failed its check at chunk ${v.bad} (offset ${v.bad * m.chunkSize})${url ? ' again after a fresh download' : ''}; it was deleted`);
      }
      stats.repairedFrom = v.bad * m.chunkSize;
      m.chunks.length = v.bad;
      m.complete = false;
      await writeManifest(store, m).catch((e) => { throw named(e, `storing the manifest of ${m.name}`); });
    }
  } catch (e) {
    const err = named(e, 'caching the model');
    // A full quota: free what this entry took so the rest of the site keeps working.
    if (err instanceof StorageQuotaError) await store.remove(id).catch(() => {});
    release();
    throw err;
  }
}

/**
 * Make sure the model at `url` is stored whole (download it, or resume, or repair) and checked;
 * a new entry is named `opts.name`, or by the URL's last path segment.
 * Resolves with { file, info, release } — call release() once the engine has read the file — or
 * null when this context has no persistent storage. Rejects with StorageQuotaError (the partial
 * entry is then deleted), AbortError or IoError (a partial entry stays and resumes next time),
 * or CacheCorruptError.
 */
export async function fromUrl(url, opts = {}) {
  const store = await openStore();
  return store && prepare(store, await entryId('url', url), url, opts);
}

/** The same for an entry found by name (from find()). */
export async function fromEntry(m, opts = {}) {
  const store = await openStore();
  if (!store) throw new InvalidOptionError('no model cache in this browser');
  return prepare(store, m.id, m.url, opts);
}

/**
 * Store a File/Blob the caller already has (progress phase 'store'), so that it can be loaded
 * by name later. Resolves with the entry's info (null without storage); the caller keeps using
 * its own Blob. An entry is identified by name, size and its first chunk's hash.
 */
export async function storeBlob(blob, opts = {}) {
  const store = await openStore();
  if (!store) return null;
  const first = await sha256(await blob.slice(0, CHUNK_SIZE).arrayBuffer());
  const name = blob.name || `model-${blob.size}.gguf`;
  const id = await entryId('file', `${name}:${blob.size}:${first}`);
  const release = await lock(id, opts.signal).catch((e) => { throw named(e, 'waiting for the cache'); });
  try {
    let m = await readManifest(store, id);
    const start = m ? bytesDone(m) : 0;
    if (!m?.complete) {
      m ??= await newManifest(store, id, { name, url: null, source: 'file', size: blob.size });
      await checkQuota(m.size - start);
      await writeManifest(store, m).catch((e) => { throw named(e, `storing the manifest of ${m.name}`); });
      await fill(store, m, blob.slice(start).stream(), 0, opts, 'store');
    }
    return { ...describe(store, m), stored: true, downloaded: 0, resumedFrom: start, repairedFrom: null };
  } catch (e) {
    const err = named(e, 'storing the model');
    if (err instanceof StorageQuotaError) await store.remove(id).catch(() => {});
    throw err;
  } finally {
    release();
  }
}
