// aigc — the public module. `Engine` runs quantized GGUF models on WebGPU, in a Web Worker by
// default, with an OpenAI-shaped API:
//
//   const engine = await Engine.create();
//   await engine.load('models/SmolLM2-135M-Instruct.Q4_1.gguf', { onProgress });
//   for await (const c of await engine.chat.completions.create({ messages, stream: true }))
//     out += c.choices[0].delta.content ?? '';
//
// Errors are instances of the classes in errors.js (re-exported here); their `name` survives
// the worker boundary.
//
// Models loaded by URL are kept in the browser's storage (cache.js): the next load reads them
// from there, checked chunk by chunk, without the network. The cache runs here, in the context
// that imported this module (normally the page), not in the engine's worker: Engine.cached() and
// Engine.deleteCached() are static and must work before (or without) an engine; the same code
// then serves Engine.create({ worker: false }); an abort stops the download at once instead of
// queueing behind the worker's one-request-at-a-time host; and the heavy parts (fetch, SHA-256,
// OPFS writes) are asynchronous browser work that does not block the page. The worker receives a
// Blob of the stored chunks and reads it by range, as for a dropped File.

import {
  AbortError, DeviceLostError, GpuError, InvalidOptionError, ModelFormatError, StorageQuotaError, toError,
} from './errors.js';
import * as modelCache from './cache.js';

export {
  AigcError, WebGpuUnavailableError, ModelFormatError, UnsupportedModelError, ContextOverflowError,
  DeviceLostError, StorageQuotaError, CacheCorruptError, InvalidOptionError, TokenizerError,
  ChatTemplateError, OutOfMemoryError, GpuError, IoError, AbortError,
} from './errors.js';

// A push-to-pull queue: the worker pushes chunks, `for await` pulls them.
class ChunkQueue {
  constructor() { this.items = []; this.waiters = []; this.closed = false; this.error = null; }
  push(item) { const w = this.waiters.shift(); if (w) w.resolve({ value: item, done: false }); else this.items.push(item); }
  close() { this.closed = true; for (const w of this.waiters.splice(0)) w.resolve({ value: undefined, done: true }); }
  fail(e) { this.error = e; for (const w of this.waiters.splice(0)) w.reject(e); }
  next() {
    if (this.items.length) return Promise.resolve({ value: this.items.shift(), done: false });
    if (this.error) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
  [Symbol.asyncIterator]() { return this; }
}

let nextId = 1;

// What aigc reads from a diffusers folder: a URL folder is cached file by file from this list
// (absent ones are skipped; the engine names any it needed).
const FOLDER_FILES = [
  'tokenizer/vocab.json', 'tokenizer/merges.txt', 'tokenizer/tokenizer_config.json', 'tokenizer/special_tokens_map.json',
  'scheduler/scheduler_config.json', 'text_encoder/config.json', 'text_encoder/model.safetensors',
  'unet/config.json', 'unet/diffusion_pytorch_model.safetensors', 'vae/config.json', 'vae/diffusion_pytorch_model.safetensors',
  'taesd/config.json', 'taesd/diffusion_pytorch_model.safetensors',
];

/**
 * A folder given as files, as {relative path: Blob}, or null when `src` is not one. Takes a
 * FileList or File[] (from <input webkitdirectory>, whose paths start with the folder's own
 * name, which is dropped; or Files carrying `relativePath`), or an object of Blobs by path.
 */
function folderFiles(src) {
  if (typeof Blob === 'undefined' || src == null || typeof src !== 'object' || src instanceof Blob) return null;
  const list = Array.isArray(src) || (typeof FileList !== 'undefined' && src instanceof FileList) ? [...src] : null;
  if (!list) {
    const entries = Object.entries(src);
    if (!entries.length || !entries.every(([, b]) => b instanceof Blob)) return null;
    return Object.fromEntries(entries);
  }
  if (!list.length || !list.every((f) => f instanceof Blob)) return null;
  let paths = list.map((f) => (f.relativePath || f.webkitRelativePath || f.name || '').replace(/^\/+/, ''));
  const top = paths[0].split('/')[0];
  if (paths.every((p) => p.startsWith(`${top}/`))) paths = paths.map((p) => p.slice(top.length + 1));
  return Object.fromEntries(paths.map((p, i) => [p, list[i]]));
}

/**
 * Store every file of the diffusers folder at `url` in the model cache (each its own entry,
 * named `folder/rel`), or take them from there. Resolves with {files, info, releases, names}, or
 * null without storage. A file the server does not have (404) is left out.
 */
async function cacheFolder(url, { onProgress }) {
  const base = url.endsWith('/') ? url : `${url}/`;
  const folder = decodeURIComponent(new URL(base).pathname.split('/').filter(Boolean).pop() || new URL(base).hostname);
  const files = {};
  const names = {};
  const releases = [];
  const info = { stored: true, name: `${folder}/`, url: null, base, size: 0, downloaded: 0, files: 0 };
  try {
    for (const rel of FOLDER_FILES) {
      const progress = onProgress && ((p) => onProgress({ ...p, file: rel }));
      let got;
      try {
        got = await modelCache.fromUrl(base + rel, { onProgress: progress, name: `${folder}/${rel}` });
      } catch (e) {
        if (e?.name === 'IoError' && / HTTP 404$/.test(e.message)) continue;
        throw e;
      }
      if (!got) break; // no persistent storage here: read the folder by range instead
      releases.push(got.release);
      files[rel] = got.file;
      names[rel] = got.info.name;
      info.size += got.info.size;
      info.downloaded += got.info.downloaded;
      info.files += 1;
    }
  } catch (e) {
    for (const release of releases) release();
    throw e;
  }
  if (!info.files) return null;
  return { files, info, releases, names };
}

export class Engine {
  constructor(port) {
    this.port = port;
    this.pending = new Map();
    this.adapter = null;
    this.model = null;
    port.onmessage = (m) => this._onMessage(m);
    this.chat = { completions: { create: (o) => this._create('chat', o) } };
    this.completions = { create: (o) => this._create('completion', o) };
    this.images = { load: (url, o) => this._loadImages(url, o), generate: (o) => this._generateImages(o) };
  }

  /**
   * Start the engine (a worker unless `worker: false`) and acquire the WebGPU device.
   * `onDeviceLost(err)` is called with a DeviceLostError if the browser takes the GPU device
   * away (driver reset, memory pressure); calls fail with that error until a model is loaded
   * again, which brings up a new device. `maxStorageBinding` (bytes) is a testing knob: weights
   * are split as if the adapter's storage-binding limit were that small.
   */
  static async create({ onProgress, worker = true, onDeviceLost, maxStorageBinding = 0 } = {}) {
    let port;
    if (worker) {
      const w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
      port = { post: (m) => w.postMessage(m), set onmessage(f) { w.onmessage = (ev) => f(ev.data); }, terminate: () => w.terminate(), worker: w };
    } else {
      const { createHost } = await import('./host.js');
      let deliver = () => {};
      const host = createHost((m) => queueMicrotask(() => deliver(m)));
      port = { post: (m) => host(m), set onmessage(f) { deliver = f; }, terminate: () => {} };
    }
    const engine = new Engine(port);
    engine.onDeviceLost = onDeviceLost;
    if (port.worker) {
      // A worker that fails to start or crashes fails every pending call instead of hanging it.
      port.worker.onerror = (ev) => {
        for (const p of engine.pending.values()) p.reject(new GpuError(ev.message || 'the engine worker failed'));
        engine.pending.clear();
      };
    }
    onProgress?.({ phase: 'init', done: 0, total: 1 });
    engine.adapter = await engine._call({ type: 'create', maxStorageBinding });
    onProgress?.({ phase: 'init', done: 1, total: 1 });
    return engine;
  }

  _onMessage(m) {
    if (m.type === 'lost') {
      // Unsolicited: the device is gone, whatever is running. The model must be loaded again.
      this.model = null;
      this.onDeviceLost?.(new DeviceLostError(m.message));
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    if (m.type === 'progress') p.onProgress?.({ phase: m.phase, done: m.done, total: m.total, previews: m.previews });
    else if (m.type === 'chunk') p.onChunk?.(m.text);
    else {
      this.pending.delete(m.id);
      if (m.type === 'done') p.resolve(m.result);
      else p.reject(toError(m.error));
    }
  }

  _call(msg, handlers = {}) {
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, ...handlers });
      this.port.post({ ...msg, id });
    });
  }

  /** The models in this browser's cache, complete or partly downloaded. */
  static cached() {
    return modelCache.list();
  }

  /** Delete a cached model by name (or URL). Resolves false when there was no such entry. */
  static deleteCached(name) {
    return modelCache.remove(name);
  }

  /**
   * Load a GGUF model: a URL, the name of a cached model, or a File/Blob. The header is read from
   * a prefix and each tensor is streamed to the GPU on its own.
   * `cache` (default: on for URLs, off for Files/Blobs): a URL is first downloaded into the
   * browser's storage (or resumed, or taken from there) and the engine reads the stored copy;
   * a File/Blob is stored as well when `cache: true`. The resolved info carries
   * `cache: {stored, name, size, downloaded, resumedFrom, repairedFrom, error?, …}`.
   * A full storage quota is not fatal: the model loads from the network by range requests,
   * `info.cache.error` is {name: 'StorageQuotaError', message}, and onProgress gets an event
   * with that `error` too.
   */
  async load(source, { onProgress, signal, ctx = 0, cache, numerics = 'f32' } = {}) {
    if (signal?.aborted) throw new AbortError('load aborted');
    // numerics: 'f32' (exact) or 'ggml' (activations rounded to 8 bits as llama.cpp's CPU does).
    const msg = { type: 'load', ctx, numerics };
    const opts = { onProgress, signal };
    let stored = { stored: false };
    let release = () => {};
    const notStored = (e) => {
      if (!(e instanceof StorageQuotaError)) throw e;
      stored = { stored: false, error: { name: e.name, message: e.message } };
      onProgress?.({ phase: 'download', done: 0, total: 0, error: stored.error });
    };
    if (typeof source === 'string' || source instanceof URL) {
      // A string that is a cached model's name loads that entry; anything else is a URL.
      const entry = cache !== false && typeof source === 'string' ? await modelCache.find(source) : null;
      const byName = entry?.name === source;
      let url = entry?.url ?? null;
      if (!byName) {
        try {
          url = new URL(source, globalThis.location?.href).href;
        } catch {
          throw new InvalidOptionError(`not a URL nor a cached model's name: ${source}`);
        }
      }
      if (cache !== false) {
        const got = await (byName ? modelCache.fromEntry(entry, opts) : modelCache.fromUrl(url, opts)).catch(notStored);
        if (got) ({ file: msg.blob, info: stored, release } = got);
        else if (got === null) stored = { stored: false, backend: null }; // no storage in this browser
      }
      if (!msg.blob) msg.url = url;
    } else if (source instanceof Blob) {
      msg.blob = source;
      if (cache === true) stored = (await modelCache.storeBlob(source, opts).catch(notStored)) ?? stored;
    } else {
      throw new InvalidOptionError('load() takes a URL, a cached model\'s name, or a File/Blob');
    }
    if (signal?.aborted) {
      release();
      throw new AbortError('load aborted');
    }
    this.source = source;
    const call = this._call(msg, { onProgress });
    const id = nextId - 1;
    // The lock on the cache entry is held until the worker has finished reading the stored chunks.
    call.then(release, release);
    // The worker finishes the upload it started, then drops the model; the caller is released now.
    const aborted = new Promise((_, reject) => signal?.addEventListener('abort', () => {
      this.port.post({ type: 'abort', target: id });
      reject(new AbortError('load aborted'));
    }, { once: true }));
    const info = await Promise.race([call, aborted]).catch(async (e) => {
      // Bytes that are not a GGUF file (say an HTML error page served with status 200) must not
      // stay cached, or every later load would get them again without asking the server.
      if (e instanceof ModelFormatError && stored.stored && stored.url) {
        await modelCache.remove(stored.name).catch(() => {});
        e.message += ' (the downloaded copy was removed from the cache)';
      }
      throw e;
    });
    info.cache = stored;
    this.model = info;
    return info;
  }

  /**
   * Load a Stable Diffusion diffusers folder (text_encoder/, unet/, vae/, tokenizer/,
   * scheduler/) from a base URL, or a single-file checkpoint (a `.safetensors` or
   * stable-diffusion.cpp `.gguf` URL in the original layout) whose tokenizer and configs come
   * from the folder `config` (default: the file's directory), or such a file as a File/Blob
   * (drag-and-drop; `config` is then required). A folder is read with HTTP range requests; a
   * single-file URL is downloaded into the browser's model cache first (resumed, or taken from
   * there; `cache: false` reads it by range instead), as text models are. `quant`: 'f32', 'q8_0'
   * or 'q4_0' for the UNet and text-encoder weights (default f32, or a GGUF's own type).
   * The info carries `cache` as `load()`'s does.
   */
  async _loadImages(src, { quant, config, cache, onProgress } = {}) {
    const abs = (u) => new URL(u, globalThis.location?.href).href;
    const msg = { type: 'loadImage', quant: quant || '', config: config ? abs(config) : undefined };
    let stored = { stored: false };
    let releases = [];
    let cached = {}; // rel → cache entry name, for a URL folder taken from the cache
    const files = folderFiles(src);
    if (files) {
      msg.files = files;
    } else if (typeof Blob !== 'undefined' && src instanceof Blob) {
      if (!config) throw new InvalidOptionError('a single-file checkpoint carries no tokenizer: give `config`, the URL of a folder with one');
      Object.assign(msg, { blob: src, name: src.name || 'checkpoint' });
    } else if (typeof src === 'string' || src instanceof URL) {
      const url = abs(String(src));
      const quota = (e) => {
        if (!(e instanceof StorageQuotaError)) throw e;
        stored = { stored: false, error: { name: e.name, message: e.message } };
        onProgress?.({ phase: 'download', done: 0, total: 0, error: stored.error });
      };
      if (cache !== false && /\.(safetensors|gguf)$/i.test(new URL(url).pathname)) {
        const got = await modelCache.fromUrl(url, { onProgress }).catch(quota);
        if (got) ({ file: msg.blob, info: stored, release: releases[0] } = got);
        if (msg.blob) Object.assign(msg, { name: url, config: msg.config ?? new URL('.', url).href });
      } else if (cache !== false) {
        const got = await cacheFolder(url, { onProgress }).catch(quota);
        if (got) ({ files: msg.files, info: stored, releases, names: cached } = got);
      }
      if (!msg.blob && !msg.files) msg.url = url;
    } else {
      throw new InvalidOptionError('images.load() takes a URL, a File/Blob, or a folder (FileList, File[] with paths, or {path: Blob})');
    }
    try {
      this.imageModel = await this._call(msg, { onProgress });
    } catch (e) {
      // A stored copy that is not a checkpoint (an HTML error page, say) must not stay cached.
      if (e instanceof ModelFormatError && stored.stored) {
        const bad = stored.url ? [[stored.url, stored.name]] : Object.entries(cached);
        const hit = bad.filter(([key]) => e.message.includes(key));
        for (const [, name] of hit) await modelCache.remove(name).catch(() => {});
        if (hit.length) e.message += ' (the downloaded copy was removed from the cache)';
      }
      throw e;
    } finally {
      for (const release of releases) release?.();
    }
    this.imageModel.cache = stored;
    return this.imageModel;
  }

  /**
   * OpenAI images-API shaped: resolves with `{created, data: [{b64_json, blob, seed}], aigc}`.
   * Options: prompt, negative_prompt, n, size ('512x512'), steps, guidance_scale, seed,
   * scheduler ('euler' | 'euler_a' | 'dpmpp_2m' | 'ddim' | 'lcm' | 'turbo'), image and mask
   * (PNG Blob/ArrayBuffer/Uint8Array: img2img / inpainting), strength, signal, activations
   * ('f32' | 'f16': how the UNet stores activations; f16 needs `adapter.shader_f16`),
   * onStep({step, steps, previews}) — `previews` (with `previews: true` and a model folder that
   * has `taesd/`): one PNG Blob per candidate, its TAESD picture of the denoised estimate.
   */
  async _generateImages(o = {}) {
    if (typeof o.prompt !== 'string') throw new InvalidOptionError('prompt must be a string');
    const bytesOf = async (b) => (b == null ? undefined
      : b instanceof Blob ? await b.arrayBuffer()
        : b instanceof ArrayBuffer ? b.slice(0)
          : ArrayBuffer.isView(b) ? b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)
            : Promise.reject(new InvalidOptionError('image and mask must be PNG bytes (Blob, ArrayBuffer or Uint8Array)')));
    const request = {
      prompt: o.prompt, negative_prompt: o.negative_prompt ?? '', n: o.n ?? 1, size: o.size ?? '512x512',
      steps: o.steps ?? 20, guidance_scale: o.guidance_scale ?? 7.5, scheduler: o.scheduler ?? 'euler',
      seed: o.seed ?? Math.floor(Math.random() * 2 ** 32), strength: o.strength ?? 0.8, previews: !!o.previews,
      activations: o.activations ?? 'f32',
    };
    const msg = { type: 'image', request, init: await bytesOf(o.image), mask: await bytesOf(o.mask) };
    const onProgress = (p) => o.onStep?.({
      step: p.done, steps: p.total,
      previews: (p.previews || []).map((b) => new Blob([b], { type: 'image/png' })),
    });
    const done = this._call(msg, { onProgress });
    const id = nextId - 1;
    o.signal?.addEventListener('abort', () => this.port.post({ type: 'abort', target: id }), { once: true });
    if (o.signal?.aborted) this.port.post({ type: 'abort', target: id });
    const r = await done;
    return {
      created: Math.floor(Date.now() / 1000),
      data: r.pngs.map((buf, k) => ({ b64_json: base64(new Uint8Array(buf)), blob: new Blob([buf], { type: 'image/png' }), seed: r.summary.seeds[k] })),
      aigc: r.summary,
    };
  }

  /** Testing hook: make the engine lose its GPU device as a driver reset would. */
  _simulateDeviceLoss() {
    return this._call({ type: 'simulateDeviceLoss' });
  }

  /** Free the model's GPU memory. */
  async unload() {
    await this._call({ type: 'unload' });
    this.model = null;
  }

  _request(kind, o) {
    if (kind === 'chat' && !Array.isArray(o.messages)) throw new InvalidOptionError('messages must be an array of {role, content}');
    if (kind === 'completion' && typeof o.prompt !== 'string') throw new InvalidOptionError('prompt must be a string');
    const stop = o.stop == null ? [] : Array.isArray(o.stop) ? o.stop : [o.stop];
    return {
      kind, messages: o.messages ?? [], prompt: o.prompt ?? '', max_tokens: o.max_tokens ?? 256,
      temperature: o.temperature ?? 0.8, top_k: o.top_k ?? 40, top_p: o.top_p ?? 0.95, min_p: o.min_p ?? 0.05,
      // No seed means a fresh one per call (as OpenAI does); pass one for reproducible output.
      repetition_penalty: o.repetition_penalty ?? 1.0, seed: o.seed ?? Math.floor(Math.random() * 2 ** 32), stop,
    };
  }

  _create(kind, o = {}) {
    const request = this._request(kind, o);
    const created = Math.floor(Date.now() / 1000);
    const model = this.model?.name ?? 'aigc';
    const base = { id: `aigc-${nextId}`, created, model, object: kind === 'chat' ? 'chat.completion.chunk' : 'text_completion' };
    const piece = (text, finish) => kind === 'chat'
      ? { index: 0, delta: text == null ? {} : { content: text }, finish_reason: finish }
      : { index: 0, text: text ?? '', finish_reason: finish };
    const usageOf = (r) => ({
      prompt_tokens: r.prompt_tokens, completion_tokens: r.completion_tokens,
      total_tokens: r.prompt_tokens + r.completion_tokens,
      prefill_tokens_per_s: r.prefill_tokens_per_s, decode_tokens_per_s: r.decode_tokens_per_s,
    });
    const queue = new ChunkQueue();
    const onChunk = (text) => queue.push({ ...base, choices: [piece(text, null)] });
    const done = this._call({ type: 'generate', request }, { onChunk });
    const id = nextId - 1;
    o.signal?.addEventListener('abort', () => this.port.post({ type: 'abort', target: id }), { once: true });
    if (o.signal?.aborted) this.port.post({ type: 'abort', target: id });
    const finished = done.then((r) => {
      queue.push({ ...base, choices: [piece(null, r.finish_reason)], usage: usageOf(r), aigc: { tokens: r.tokens } });
      queue.close();
      return r;
    }, (e) => { queue.fail(e); throw e; });
    if (o.stream) {
      finished.catch(() => {}); // the error reaches the caller through the iterator
      return Promise.resolve(queue);
    }
    return finished.then((r) => ({
      id: base.id, created, model,
      object: kind === 'chat' ? 'chat.completion' : 'text_completion',
      choices: [kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finish_reason }
        : { index: 0, text: r.text, finish_reason: r.finish_reason }],
      usage: usageOf(r),
      aigc: { tokens: r.tokens },
    }));
  }
}

function base64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
