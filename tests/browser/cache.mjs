// Tests of the browser's persistent model cache (www/cache.js through Engine.load / cached /
// deleteCached and the page), in Debian's headless Chromium with WebGPU on SwiftShader, driven by
// playwright-core (no downloaded browser). Run by ./build.sh test:
//   MODEL=models/….gguf node tests/browser/cache.mjs
// The browser profile is a fresh temporary directory (launchPersistentContext), so OPFS lives on
// disk as it does for users; serve.mjs runs with AIGC_SERVE_TEST=1, which records every request
// to /models/ (the assertions about what came from the network are made on the server side) and
// can break a response off after N bytes.
// a. first load through the page UI downloads into the cache (Downloading, then checking,
//    uploading, compiling), Engine.cached() lists it complete with the right size and the stored
//    bytes hash to the served file; the engine read no model bytes from the network itself;
// b. a new page loads it with no request to /models/ at all and the same greedy tokens;
// c. an abort, then a dropped connection, leave a partial entry; each next load asks only for the
//    rest (Range start = the stored offset) and the finished copy gives the same tokens;
// d. a corrupted chunk is found when the model is opened from the page's cached-models list (by
//    name, with "Keep a copy" unticked), and downloaded again from its offset;
// f. deleting through the page's list removes the entry and its files;
// e. quota: a CDP-lowered quota makes a cache write fail, and an estimate() below the model's size
//    stops the download before any write: both load from the network, with StorageQuotaError in
//    the load info, the progress events and the page's notice;
// g. the Cache API backend (browsers without OPFS) stores, serves without network, and deletes;
// h. a File loaded with cache: true is stored (phase 'store') and reads back by name; a download
//    the engine rejects as not GGUF (ModelFormatError) is removed from the cache;
// i. image models: a diffusers folder URL is stored file by file and a single-file checkpoint URL
//    whole; a new page loads both without fetching any weights.
// Ends with the plain line 'N passed, N failed'; exits 1 on failure.
import { chromium } from 'playwright-core';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CHROMIUM, ROOT, assert, assertEq, check, finish, serve } from './harness.mjs';

const MODEL = resolve(ROOT, process.env.MODEL || 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
if (dirname(MODEL) !== join(ROOT, 'models')) throw new Error(`MODEL must be in models/ (serve.mjs serves it at /models/): ${MODEL}`);
const PORT = Number(process.env.CACHE_PORT || 8766);
const BASE = `http://127.0.0.1:${PORT}/`;
const ORIGIN = BASE.slice(0, -1);
const NAME = basename(MODEL);
const URL_ = `${BASE}models/${NAME}`;
const SIZE = statSync(MODEL).size;
const SHA = createHash('sha256').update(readFileSync(MODEL)).digest('hex');
const PROMPT = 'The old lighthouse keeper climbed the narrow stairs every evening, and';
const N = 4; // greedy tokens per load: enough to show the stored copy works

const server = await serve(PORT, { AIGC_SERVE_TEST: '1' });
/** The /models/ requests since the last call: [{method, path, range}]. */
const serverLog = async () => (await fetch(`${BASE}__test/log?clear=1`)).json();
const bodyRanges = (log) => log.filter((r) => r.range !== 'bytes=0-0').map((r) => r.range);

const profile = mkdtempSync(join(tmpdir(), 'aigc-cache-test-'));
const context = await chromium.launchPersistentContext(profile, { ...CHROMIUM, viewport: { width: 1280, height: 800 } });

async function openPage() {
  const page = await context.newPage();
  page.setDefaultTimeout(15 * 60 * 1000);
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  if (process.env.AIGC_DEBUG) page.on('console', (m) => console.log(`console: ${m.text()}`));
  await page.goto(BASE);
  await page.waitForFunction(() => window.aigcApp && window.aigcApp.ready);
  await page.evaluate(() => window.aigcApp.ready);
  await serverLog(); // what follows is this page's doing
  return page;
}

/** engine.load in the page, recording progress phase by phase; then N greedy tokens. */
function loadAndGenerate(page, source, { generate = true, abortAt = null } = {}) {
  return page.evaluate(async ([source, prompt, n, generate, abortAt]) => {
    const engine = window.aigcApp.engine;
    const events = [];
    const ctl = new AbortController();
    const onProgress = (p) => {
      const last = events[events.length - 1];
      if (!last || last.phase !== p.phase || p.error) events.push({ phase: p.phase, first: p.done, done: p.done, total: p.total, error: p.error });
      else Object.assign(last, { done: p.done, total: p.total });
      if (abortAt != null && p.phase === 'download' && p.done >= abortAt) ctl.abort();
    };
    const t0 = performance.now();
    try {
      const info = await engine.load(source, { onProgress, signal: ctl.signal });
      const loadS = (performance.now() - t0) / 1000;
      if (!generate) return { info, events, loadS };
      const r = await engine.completions.create({ prompt, max_tokens: n, temperature: 0 });
      return { info, events, loadS, tokens: r.aigc.tokens };
    } catch (e) {
      return { error: { name: e.name, message: e.message }, events };
    }
  }, [source, PROMPT, N, generate, abortAt]);
}
const phases = (events) => events.map((e) => e.phase).filter((p, i, a) => p !== a[i - 1]);

/** Click something that loads a model in the page UI; resolves with the progress labels seen. */
async function loadThroughUi(page, selector) {
  await page.evaluate(() => {
    const label = document.getElementById('progress-label');
    window.labels = [];
    window.labelObserver?.disconnect();
    window.labelObserver = new MutationObserver(() => {
      const what = label.textContent.split('…')[0];
      if (window.labels[window.labels.length - 1] !== what) window.labels.push(what);
    });
    window.labelObserver.observe(label, { childList: true, characterData: true, subtree: true });
    // The state may already be 'loaded' from an earlier load: wait for a 'loading' and its end.
    window.states = [];
    window.stateObserver?.disconnect();
    window.stateObserver = new MutationObserver(() => window.states.push(document.body.dataset.state));
    window.stateObserver.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
  });
  await page.click(selector);
  await page.waitForFunction(() => {
    const i = window.states.indexOf('loading');
    return i >= 0 && window.states.slice(i + 1).some((st) => ['loaded', 'error', 'ready'].includes(st));
  });
  if (await page.evaluate(() => document.body.dataset.state) !== 'loaded') {
    const [state, labels, label] = await page.evaluate(() => [document.body.dataset.state, window.labels, document.getElementById('progress-label').textContent]);
    throw new Error(`page state ${state}: ${await page.textContent('#error')} (progress: ${JSON.stringify(labels)}, now ${JSON.stringify(label)})`);
  }
  return page.evaluate(() => window.labels);
}
/** `labels` contains `want` in this order (other labels may come between). */
function assertOrder(labels, want) {
  let i = 0;
  for (const l of labels) if (l === want[i]) i++;
  assert(i === want.length, `progress labels ${JSON.stringify(labels)} do not run through ${JSON.stringify(want)}`);
}
const greedy = (page) => page.evaluate(async ([prompt, n]) => (await window.aigcApp.engine.completions.create({ prompt, max_tokens: n, temperature: 0 })).aigc.tokens, [PROMPT, N]);
const cached = (page) => page.evaluate(async () => (await import('/aigc.js')).Engine.cached());
const chunkSize = (page) => page.evaluate(async () => (await import('/cache.js')).CHUNK_SIZE);
function entryOf(list) {
  const e = list.find((x) => x.name === NAME);
  if (!e) throw new Error(`no cache entry named ${NAME} in ${JSON.stringify(list)}`);
  return e;
}

let want = null; // greedy tokens of the first load: every later load must give the same
let chunk = 0;
let page = null;
try {
  await check('a. first load through the page downloads into the cache, then loads the stored copy', async () => {
    page = await openPage();
    chunk = await chunkSize(page);
    assert(SIZE > 4 * chunk, `the model (${SIZE} bytes) must span more than 4 chunks of ${chunk}`);
    const labels = await loadThroughUi(page, '#load-btn');
    assertOrder(labels, ['Downloading', 'Checking the stored copy', 'Uploading to GPU']);
    const log = await serverLog();
    // One probe, one streamed body; the engine itself read nothing from the network.
    assertEq(log.map((r) => r.range), ['bytes=0-0', 'bytes=0-'], 'requests to /models/');
    const info = await page.evaluate(() => window.aigcApp.engine.model.cache);
    assertEq([info.stored, info.backend, info.downloaded, info.resumedFrom], [true, 'opfs', SIZE, 0], 'info.cache stored/backend/downloaded/resumedFrom');
    const e = entryOf(await cached(page));
    assertEq([e.complete, e.size, e.bytesDone, e.url], [true, SIZE, SIZE, URL_], 'Engine.cached() entry');
    await page.waitForSelector(`#cache-list li[data-name="${NAME}"][data-complete="true"]`);
    const stored = await page.evaluate(async (name) => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('aigc-models');
      for await (const [, dir] of root.entries()) {
        const m = JSON.parse(await (await (await dir.getFileHandle('manifest.json')).getFile()).text());
        if (m.name !== name) continue;
        const parts = [];
        for (let i = 0; i < m.chunks.length; i++) parts.push(await (await dir.getFileHandle(`${String(i).padStart(5, '0')}.bin`)).getFile());
        const digest = await crypto.subtle.digest('SHA-256', await new Blob(parts).arrayBuffer());
        return { n: parts.length, sha: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('') };
      }
      return null;
    }, NAME);
    assertEq(stored, { n: Math.ceil(SIZE / chunk), sha: SHA }, 'stored chunks vs the served file');
    want = await greedy(page);
    assert(want.length === N, `generated ${want.length} tokens`);
    console.log(`     progress: ${labels.join(' → ')}; tokens ${JSON.stringify(want)}`);
  });

  await check('b. a new page loads the cached model without any request to /models/, same tokens', async () => {
    await page?.close();
    page = await openPage();
    const r = await loadAndGenerate(page, `models/${NAME}`);
    if (r.error) throw new Error(JSON.stringify(r.error));
    assertEq(await serverLog(), [], 'requests to /models/');
    assertEq(phases(r.events), ['verify', 'upload', 'compile'], 'progress phases');
    assertEq([r.info.cache.stored, r.info.cache.downloaded], [true, 0], 'info.cache');
    assertEq(r.tokens, want, 'greedy tokens from the cached copy');
    console.log(`     load ${r.loadS.toFixed(1)} s`);
  });

  await check('c. an aborted and a cut-off download resume from the stored offset', async () => {
    assert(await page.evaluate(async (name) => (await import('/aigc.js')).Engine.deleteCached(name), NAME), 'deleteCached said false');
    await serverLog();
    // 1. abort from the progress callback once two chunks are in
    const aborted = await loadAndGenerate(page, URL_, { abortAt: 2 * chunk });
    assertEq(aborted.error?.name, 'AbortError', 'error of the aborted load');
    const e1 = entryOf(await cached(page));
    assert(!e1.complete && e1.bytesDone >= 2 * chunk && e1.bytesDone < SIZE && e1.bytesDone % chunk === 0, `after abort: ${JSON.stringify(e1)}`);
    assertEq(bodyRanges(await serverLog()), ['bytes=0-'], 'body requests of the aborted load');
    // 2. the connection drops two chunks and a bit further on. Chromium may fail the body stream
    //    before handing over the last bytes that reached it, so the last whole chunk may be lost.
    const cutAfter = 2 * chunk + 4096;
    await fetch(`${BASE}__test/cut?after=${cutAfter}`);
    const cut = await loadAndGenerate(page, URL_);
    assertEq(cut.error?.name, 'IoError', 'error of the cut-off load');
    const e2 = entryOf(await cached(page));
    assert(!e2.complete && e2.bytesDone >= e1.bytesDone + chunk && e2.bytesDone <= e1.bytesDone + cutAfter
      && e2.bytesDone % chunk === 0, `after the cut (${cutAfter} bytes after ${e1.bytesDone}): ${JSON.stringify(e2)}`);
    assertEq(bodyRanges(await serverLog()), [`bytes=${e1.bytesDone}-`], 'body requests of the cut-off load');
    assertEq([cut.events[0].phase, cut.events[0].first, cut.events[0].total], ['download', e1.bytesDone, SIZE], 'download progress starts at the stored offset');
    // 3. the rest
    const r = await loadAndGenerate(page, URL_);
    if (r.error) throw new Error(JSON.stringify(r.error));
    assertEq(bodyRanges(await serverLog()), [`bytes=${e2.bytesDone}-`], 'body requests of the resumed load');
    assertEq([r.info.cache.resumedFrom, r.info.cache.downloaded], [e2.bytesDone, SIZE - e2.bytesDone], 'info.cache of the resumed load');
    assertEq(phases(r.events), ['download', 'verify', 'upload', 'compile'], 'progress phases');
    assertEq(entryOf(await cached(page)).complete, true, 'complete after resuming');
    assertEq(r.tokens, want, 'greedy tokens after resuming');
    console.log(`     aborted at ${e1.bytesDone}, cut at ${e2.bytesDone}, resumed: load ${r.loadS.toFixed(1)} s`);
  });

  await check('d. a corrupted chunk is found on opening it from the page list, and downloaded again', async () => {
    await page.close();
    page = await openPage();
    const bad = 2;
    const changed = await page.evaluate(async ([name, bad]) => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('aigc-models');
      for await (const [, dir] of root.entries()) {
        const m = JSON.parse(await (await (await dir.getFileHandle('manifest.json')).getFile()).text());
        if (m.name !== name) continue;
        const fh = await dir.getFileHandle(`${String(bad).padStart(5, '0')}.bin`);
        const before = new Uint8Array(await (await fh.getFile()).slice(12345, 12349).arrayBuffer());
        const w = await fh.createWritable({ keepExistingData: true });
        await w.write({ type: 'write', position: 12345, data: before.map((b) => b ^ 0xff) });
        await w.close();
        return (await fh.getFile()).size;
      }
      return null;
    }, [NAME, bad]);
    assertEq(changed, chunk, 'size of the corrupted chunk file (same size: only the hash can tell)');
    // The list's Load button loads by name from the cache even with "Keep a copy" unticked.
    await page.uncheck('#cache-enabled');
    const labels = await loadThroughUi(page, `#cache-list li[data-name="${NAME}"] button:text("Load")`);
    await page.check('#cache-enabled');
    assertOrder(labels, ['Checking the stored copy', 'Downloading', 'Checking the stored copy', 'Uploading to GPU']);
    const c = await page.evaluate(() => window.aigcApp.engine.model.cache);
    assertEq([c.stored, c.repairedFrom, c.resumedFrom], [true, bad * chunk, bad * chunk], 'info.cache stored/repairedFrom/resumedFrom');
    assertEq(bodyRanges(await serverLog()), [`bytes=${bad * chunk}-`], 'body requests of the repair');
    const notice = await page.textContent('#cache-notice');
    assert(notice.includes(`damaged from byte ${(bad * chunk).toLocaleString('en-US')}`), `notice: ${notice}`);
    assertEq(await greedy(page), want, 'greedy tokens after the repair');
  });

  await check('f. deleting from the page list removes the entry and its files', async () => {
    const usage = () => page.evaluate(async () => (await navigator.storage.estimate()).usage);
    const before = await usage();
    await page.click(`#cache-list li[data-name="${NAME}"] button:text("Delete")`);
    await page.waitForSelector(`#cache-list li[data-name="${NAME}"]`, { state: 'detached' });
    assertEq((await cached(page)).filter((e) => e.name === NAME), [], 'Engine.cached() after delete');
    const dirs = await page.evaluate(async () => {
      const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('aigc-models');
      const names = [];
      for await (const [n] of root.entries()) names.push(n);
      return names;
    });
    assertEq(dirs, [], 'directories left in aigc-models/');
    const after = await usage();
    assert(before - after >= SIZE * 0.9, `storage usage fell by ${before - after} bytes only`);
    assertEq(await page.evaluate(async (name) => (await import('/aigc.js')).Engine.deleteCached(name), NAME), false, 'deleting again');
  });

  const cdp = await context.newCDPSession(page);
  await check('e1. a cache write over the quota: StorageQuotaError notice, loaded from the network', async () => {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: ORIGIN, quotaSize: 40 << 20 });
    // estimate() must not stop the download first, so that a write meets the real quota.
    await page.evaluate(() => { navigator.storage.estimate = async () => ({ quota: 1e12, usage: 0 }); });
    await serverLog();
    await loadThroughUi(page, '#load-btn');
    const notice = await page.evaluate(() => ({ hidden: document.getElementById('cache-notice').hidden, text: document.getElementById('cache-notice').textContent }));
    assert(!notice.hidden && notice.text.includes('StorageQuotaError') && notice.text.includes('without keeping a copy'), `notice: ${JSON.stringify(notice)}`);
    const c = await page.evaluate(() => window.aigcApp.engine.model.cache);
    assertEq([c.stored, c.error?.name], [false, 'StorageQuotaError'], 'info.cache');
    assert(/quota/.test(c.error.message), `message: ${c.error.message}`);
    assertEq((await cached(page)).filter((e) => e.name === NAME), [], 'no (partial) entry left');
    const ranges = bodyRanges(await serverLog());
    assert(ranges[0] === 'bytes=0-' && ranges.length > 10, `the engine did not read by range from the network: ${JSON.stringify(ranges.slice(0, 5))}…`);
    assertEq(await greedy(page), want, 'greedy tokens loaded from the network');
    console.log(`     ${c.error.message}`);
  });

  await check('e2. estimate() below the model size: no write at all, StorageQuotaError in progress and info', async () => {
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: ORIGIN });
    await serverLog(); // only this check's requests
    await page.evaluate((size) => { navigator.storage.estimate = async () => ({ quota: size, usage: size / 2 }); }, SIZE);
    const r = await loadAndGenerate(page, URL_, { generate: false });
    if (r.error) throw new Error(JSON.stringify(r.error));
    const flagged = r.events.filter((e) => e.error);
    assertEq(flagged.map((e) => e.error.name), ['StorageQuotaError'], 'progress events with an error');
    assertEq([r.info.cache.stored, r.info.cache.error?.name], [false, 'StorageQuotaError'], 'info.cache');
    assertEq(phases(r.events), ['download', 'upload', 'compile'], 'progress phases');
    const ranges = bodyRanges(await serverLog());
    assert(!ranges.includes('bytes=0-'), `the cache downloaded anyway: ${JSON.stringify(ranges.slice(0, 5))}`);
    assertEq((await cached(page)).filter((e) => e.name === NAME), [], 'no entry');
    console.log(`     ${r.info.cache.error.message}`);
  });
  await cdp.detach();

  await check('g. Cache API backend: stores, loads without network, deletes', async () => {
    await page.close();
    page = await openPage();
    await page.evaluate(async () => (await import('/cache.js')).useBackend('cache-api'));
    assertEq(await cached(page), [], 'the Cache API store starts empty');
    const r = await loadAndGenerate(page, URL_);
    if (r.error) throw new Error(JSON.stringify(r.error));
    assertEq([r.info.cache.stored, r.info.cache.backend, r.info.cache.downloaded], [true, 'cache-api', SIZE], 'info.cache');
    assertEq(r.tokens, want, 'greedy tokens through the Cache API');
    await serverLog();
    const again = await page.evaluate(async (url) => {
      const got = await (await import('/cache.js')).fromUrl(url);
      got.release();
      const digest = await crypto.subtle.digest('SHA-256', await got.file.arrayBuffer());
      return { size: got.file.size, sha: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('') };
    }, URL_);
    assertEq(again, { size: SIZE, sha: SHA }, 'the stored copy, read again');
    assertEq(await serverLog(), [], 'requests to /models/ when reading it again');
    assertEq(await page.evaluate(async (name) => (await import('/aigc.js')).Engine.deleteCached(name), NAME), true, 'deleteCached');
    assertEq(await page.evaluate(async () => (await (await caches.open('aigc-models')).keys()).length), 0, 'Cache API keys left');
  });
  await check('h. a File stored with cache: true is listed and reads back; a non-GGUF download is not kept', async () => {
    await page.evaluate(async () => (await import('/cache.js')).useBackend(null));
    const r = await page.evaluate(async (url) => {
      const { Engine } = await import('/aigc.js');
      const cache = await import('/cache.js');
      const file = new File([await (await fetch(url)).blob()], 'dropped-copy.gguf');
      const events = [];
      const info = await window.aigcApp.engine.load(file, { cache: true, onProgress: (p) => events.push(p.phase) });
      const entry = (await Engine.cached()).find((e) => e.name === 'dropped-copy.gguf');
      const got = await cache.fromEntry(await cache.find('dropped-copy.gguf'));
      got.release();
      const digest = await crypto.subtle.digest('SHA-256', await got.file.arrayBuffer());
      const removed = await Engine.deleteCached('dropped-copy.gguf');
      let bad = null;
      try {
        await window.aigcApp.engine.load('style.css');
      } catch (e) {
        bad = { name: e.name, message: e.message };
      }
      return {
        phases: events.filter((p, i) => p !== events[i - 1]), cache: info.cache, entry, removed, bad,
        sha: Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join(''),
        left: (await Engine.cached()).map((e) => e.name),
      };
    }, URL_);
    assertEq(r.phases, ['store', 'upload', 'compile'], 'progress phases');
    assertEq([r.cache.stored, r.cache.url, r.entry?.complete, r.entry?.size, r.entry?.url], [true, null, true, SIZE, null], 'stored File entry');
    assertEq(r.sha, SHA, 'the stored File, read back');
    assertEq(r.removed, true, 'deleteCached of the File entry');
    assertEq(r.bad?.name, 'ModelFormatError', 'loading style.css');
    assert(r.bad.message.includes('removed from the cache'), `message: ${r.bad.message}`);
    assertEq(r.left, [], 'entries left');
  });
  await check('i. image models by URL: a diffusers folder is cached file by file and a single-file checkpoint whole; new pages load both with no request', async () => {
    const folder = `${BASE}fixtures/sd-tiny-v1/`;
    const single = `${BASE}fixtures/sd-tiny-v1-single/sd-tiny-v1.safetensors`;
    const loadImages = (url) => page.evaluate(async (url) => {
      const info = await window.aigcApp.engine.images.load(url);
      const { Engine } = await import('/aigc.js');
      return { cache: info.cache, previews: info.previews, entries: (await Engine.cached()).map((e) => [e.name, e.complete]) };
    }, url);
    await serverLog();
    const first = await loadImages(folder);
    const fetched = (await serverLog()).map((r) => r.path);
    assertEq([first.cache.stored, first.cache.name, first.previews], [true, 'sd-tiny-v1/', true], 'folder info.cache');
    // Every file of the folder is an entry.
    const names = first.entries.map(([n]) => n).filter((n) => n.startsWith('sd-tiny-v1/')).sort();
    assert(names.includes('sd-tiny-v1/unet/diffusion_pytorch_model.safetensors') && names.includes('sd-tiny-v1/taesd/config.json'), `entries: ${names}`);
    assertEq([first.cache.files, names.length], [13, 13], 'files stored, entries');
    assert(fetched.some((p) => p.endsWith('/unet/diffusion_pytorch_model.safetensors')), 'the first load fetched the UNet');
    const s1 = await loadImages(single);
    assertEq([s1.cache.stored, s1.cache.name], [true, 'sd-tiny-v1.safetensors'], 'single-file info.cache');
    await page.close();
    page = await openPage();
    const again = await loadImages(folder);
    assertEq([again.cache.stored, again.cache.downloaded], [true, 0], 'folder from the cache');
    const s2 = await loadImages(single);
    assertEq([s2.cache.stored, s2.cache.downloaded], [true, 0], 'single file from the cache');
    // The single file's tokenizer/configs still come from its folder by URL (small text files);
    // nothing else may reach the server.
    const rest = (await serverLog()).map((r) => r.path).filter((p) => !/sd-tiny-v1-single\/(tokenizer|text_encoder|unet|vae|scheduler|taesd)\/[^/]*\.(json|txt)$/.test(p));
    assertEq(rest, [], 'requests for weights on the second page');
    for (const [n] of again.entries) await page.evaluate(async (n) => (await import('/aigc.js')).Engine.deleteCached(n), n);
  });
} finally {
  await context.close();
  server.kill();
  rmSync(profile, { recursive: true, force: true });
}
finish();
