// Where the model cache (cache.js) keeps its bytes: two storage backends behind one small
// interface, chosen once per context:
//   'opfs'      navigator.storage.getDirectory() / aigc-models / <id> / manifest.json, 00000.bin, …
//   'cache-api' caches.open('aigc-models'), keys https://aigc-cache.invalid/<id>/manifest.json, …
// Interface: { kind, ids(), readManifest(id), writeManifest(id, m), writeChunk(id, i, bytes),
//              chunk(id, i) → Blob | null, remove(id) }.
// Errors are the browser's own DOMExceptions (QuotaExceededError, …); cache.js names them.
//
// One file per chunk, not one data file per model, on purpose:
// - OPFS's only writer on the page, createWritable(), writes into a swap file that replaces the
//   file on close(), and {keepExistingData: true} first COPIES the whole existing file into that
//   swap file: appending chunk by chunk to one 1 GB file would copy O(n²) bytes. Sync access
//   handles write in place but exist only in dedicated workers, and the cache must also run in
//   the page (Engine.cached(), Engine.create({ worker: false })).
// - A chunk file is committed atomically by close(): a download cut off mid-chunk (abort, tab
//   closed, network error) never leaves a torn chunk, only a swap file the browser discards.
// - The engine reads the model as `new Blob([chunk0, chunk1, …])`, which Blob.slice reads by range
//   without ever copying the model into memory, exactly like a single File.

const DIR = 'aigc-models';
const CACHE_BASE = 'https://aigc-cache.invalid/';
const MANIFEST = 'manifest.json';
export const chunkName = (i) => `${String(i).padStart(5, '0')}.bin`;

const notFound = (e) => e?.name === 'NotFoundError' || e?.name === 'TypeMismatchError';

async function opfs() {
  // Safari shipped getDirectory() years before createWritable(): without a page-side writer
  // OPFS is useless here, so such browsers take the Cache API.
  if (!globalThis.navigator?.storage?.getDirectory || !globalThis.FileSystemFileHandle?.prototype?.createWritable) return null;
  let root;
  try {
    root = await (await navigator.storage.getDirectory()).getDirectoryHandle(DIR, { create: true });
  } catch {
    return null; // e.g. SecurityError in Firefox's private windows
  }
  const dir = (id, create = false) => root.getDirectoryHandle(id, { create });
  const write = async (id, name, data) => {
    const handle = await (await dir(id, true)).getFileHandle(name, { create: true });
    const w = await handle.createWritable(); // starts empty: the chunk replaces any older one
    try {
      await w.write(data);
      await w.close();
    } catch (e) {
      await w.abort().catch(() => {});
      throw refused(e, name);
    }
  };
  const read = async (id, name) => {
    try {
      return await (await (await dir(id)).getFileHandle(name)).getFile();
    } catch (e) {
      if (notFound(e)) return null;
      throw e;
    }
  };
  return {
    kind: 'opfs',
    async ids() {
      const out = [];
      for await (const [name, handle] of root.entries()) if (handle.kind === 'directory') out.push(name);
      return out;
    },
    async readManifest(id) {
      const f = await read(id, MANIFEST);
      return f ? f.text() : null;
    },
    writeManifest: (id, text) => write(id, MANIFEST, text),
    writeChunk: (id, i, bytes) => write(id, chunkName(i), bytes),
    chunk: (id, i) => read(id, chunkName(i)),
    async remove(id) {
      try {
        await root.removeEntry(id, { recursive: true });
      } catch (e) {
        if (!notFound(e)) throw e;
      }
    },
  };
}

// A store write takes no AbortSignal, so an AbortError from it is the browser refusing the
// write; Chromium reports an over-quota OPFS write that way at times (seen in CI) instead of
// QuotaExceededError. Name it as the quota so the model loads from the network instead.
function refused(e, name) {
  if (e?.name !== 'AbortError') return e;
  return new DOMException(`the browser aborted writing ${name} (${e.message}); taken as a full storage quota`, 'QuotaExceededError');
}

async function cacheApi() {
  if (!globalThis.caches) return null;
  let cache;
  try {
    cache = await caches.open(DIR);
  } catch {
    return null;
  }
  const key = (id, name) => `${CACHE_BASE}${id}/${name}`;
  const read = async (id, name) => {
    const r = await cache.match(key(id, name));
    // Response.blob() of a cached body is backed by the cache's file on disk, not by memory.
    return r ? r.blob() : null;
  };
  const write = (id, name, data) => cache.put(key(id, name), new Response(data, {
    headers: { 'Content-Type': 'application/octet-stream' },
  })).catch((e) => { throw refused(e, name); });
  return {
    kind: 'cache-api',
    async ids() {
      const ids = new Set();
      for (const req of await cache.keys()) {
        if (req.url.startsWith(CACHE_BASE)) ids.add(req.url.slice(CACHE_BASE.length).split('/')[0]);
      }
      return [...ids];
    },
    async readManifest(id) {
      const b = await read(id, MANIFEST);
      return b ? b.text() : null;
    },
    writeManifest: (id, text) => write(id, MANIFEST, text),
    writeChunk: (id, i, bytes) => write(id, chunkName(i), bytes),
    chunk: (id, i) => read(id, chunkName(i)),
    async remove(id) {
      const prefix = `${CACHE_BASE}${id}/`;
      for (const req of await cache.keys()) if (req.url.startsWith(prefix)) await cache.delete(req);
    },
  };
}

let forced = null;
const opened = new Map();

/**
 * The backend for this context: OPFS when it is usable, else the Cache API, else null (no
 * persistent storage at all; models then load from the network). `kind` forces one.
 */
export function openStore(kind = forced) {
  const k = kind || 'auto';
  if (!opened.has(k)) {
    opened.set(k, k === 'opfs' ? opfs() : k === 'cache-api' ? cacheApi()
      : opfs().then((s) => s || cacheApi()));
  }
  return opened.get(k);
}

/**
 * Force a backend in this context ('opfs' | 'cache-api'), or null for automatic. For tests of
 * the Cache API path in a browser that has OPFS; the two stores are separate.
 */
export function useBackend(kind) {
  if (kind != null && kind !== 'opfs' && kind !== 'cache-api') throw new TypeError(`unknown cache backend ${kind}`);
  forced = kind;
}
