// End-to-end tests of the real page in Debian's headless Chromium (WebGPU on SwiftShader),
// driven by playwright-core with executablePath (no downloaded browser). Run by ./build.sh test:
//   AIGC=path/to/aigc MODEL=models/….gguf node tests/browser/e2e.mjs
// 1. the page loads the bundled model through its own UI and generates 32 greedy tokens:
//    the text must equal `aigc text --greedy` natively, token for token;
// 2. a seeded sampled run gives the same tokens as the native CLI with the same seed;
// 3. aborting mid-stream ends with finish_reason 'abort' and the next generation succeeds;
// 4. the Image tab loads the random-weight SD 1.x folder and makes 2 candidates whose pixels
//    equal `aigc image` natively (same seed, weights and options; the folder's files go through
//    the model cache); a single-file GGUF of the same model and an SD 2.x diffusers folder, both
//    chosen from disk, make native's picture byte for byte; f16 activations are refused with
//    InvalidOptionError (and not offered by the page) on an adapter without shader-f16;
// 5. an in-page engine (worker: false) and one with a forced 4 MiB binding limit give the
//    native greedy tokens; the latter loses its device (test hook), reports DeviceLostError,
//    and gives the same tokens again after loading the model anew;
// 6. a malformed file dropped in gives a ModelFormatError on the page.
// A screenshot of the page after generating is written to target/browser/ (not committed).
// Ends with the plain line 'N passed, N failed'.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CHROMIUM, ROOT, assertEq, check, finish, serve } from './harness.mjs';

const AIGC = resolve(ROOT, process.env.AIGC || 'target/release/aigc');
const MODEL = resolve(ROOT, process.env.MODEL || 'models/SmolLM2-135M-Instruct.Q4_1.gguf');
const PORT = Number(process.env.PORT || 8765);
const BASE = `http://127.0.0.1:${PORT}/`;
const PROMPT = 'The old lighthouse keeper climbed the narrow stairs every evening, and';
const N = 32; // greedy tokens through the page UI (SwiftShader here: ~2 tokens/s)

function native(args) {
  const out = execFileSync(AIGC, ['text', '--model', MODEL, '--json', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const line = out.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  return JSON.parse(line);
}

// Two base64 PNGs decoded in the page: pixels (channel values) that differ, the largest
// difference and the PSNR (Infinity when equal).
function comparePngs(page, x, y) {
  return page.evaluate(async ([x, y]) => {
    const pixels = async (b64) => {
      const bmp = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: 'image/png' }));
      const c = new OffscreenCanvas(bmp.width, bmp.height).getContext('2d');
      c.drawImage(bmp, 0, 0);
      return c.getImageData(0, 0, bmp.width, bmp.height).data;
    };
    const [a, b] = [await pixels(x), await pixels(y)];
    let se = 0; let diff = 0; let worst = 0;
    for (let i = 0; i < a.length; i++) { const d = a[i] - b[i]; se += d * d; diff += d !== 0; worst = Math.max(worst, Math.abs(d)); }
    return { same_png: x === y, diff, worst, psnr: se ? 10 * Math.log10(255 * 255 / (se / a.length)) : Infinity };
  }, [x, y]);
}

// `aigc image` on `model` with the Image-tab options `o`; its PNGs (one per candidate) in base64.
function nativeImages(model, o, name) {
  const flags = ['--prompt', o.prompt, '--negative', o.negative, '--size', o.size, '--steps', String(o.steps),
    '--cfg', String(o.cfg), '--seed', String(o.seed), '--count', String(o.count), '--scheduler', o.scheduler,
    ...(o.quant ? ['--quant', o.quant] : [])];
  mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
  const out = join(ROOT, `target/browser/${name}.png`);
  execFileSync(AIGC, ['image', '--model', model, ...flags, '--out', out], { stdio: 'ignore' });
  const files = o.count > 1 ? [...Array(o.count).keys()].map((k) => out.replace('.png', `-${k}.png`)) : [out];
  return files.map((f) => readFileSync(f).toString('base64'));
}

// Click the Image tab's Load (source already chosen), with weights `quant` when given: the
// progress label must then name it.
async function loadImageModel(page, quant) {
  if (quant) await page.selectOption('#image-quant', quant);
  await page.click('#image-load-btn');
  await page.waitForFunction(() => ['loaded', 'error'].includes(document.body.dataset.imageState));
  const label = await page.textContent('#image-progress-label');
  if (await page.evaluate(() => document.body.dataset.imageState) === 'error') throw new Error(label);
  if (quant && !label.includes(quant.toUpperCase())) throw new Error(`${quant} was asked for: ${label}`);
}

// The page made exactly one picture, byte for byte native's `want` (PSNR in the error if not).
async function expectNativePicture(page, got, want, what) {
  assertEq(got.length, 1, 'pictures on the page');
  if (got[0] !== want) throw new Error(`${what} picture differs from native: ${JSON.stringify(await comparePngs(page, got[0], want))}`);
}

// Fill the Image tab's fields from `o`, generate, and return the grid's PNGs in base64.
async function generateOnPage(page, o) {
  await page.fill('#image-prompt', o.prompt);
  await page.fill('#image-negative', o.negative);
  await page.selectOption('#image-size', o.size);
  await page.fill('#image-steps', String(o.steps));
  await page.fill('#image-cfg', String(o.cfg));
  await page.fill('#image-seed', String(o.seed));
  await page.fill('#image-count', String(o.count));
  await page.selectOption('#image-scheduler', o.scheduler);
  await page.click('#image-generate-btn');
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.imageState));
  if (await page.evaluate(() => document.body.dataset.imageState) === 'error') throw new Error(await page.textContent('#image-progress-label'));
  return page.evaluate(() => [...document.querySelectorAll('#image-grid img')].map((i) => i.dataset.b64));
}

const server = await serve(PORT);
const browser = await chromium.launch(CHROMIUM);
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.setDefaultTimeout(15 * 60 * 1000);
page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
page.on('worker', (w) => w.on('console', (m) => { if (process.env.AIGC_E2E_CONSOLE) console.log(`worker console: ${m.text()}`); }));

try {
  await page.goto(BASE);
  await page.waitForFunction(() => window.aigcApp && window.aigcApp.ready);
  await page.evaluate(() => window.aigcApp.ready);

  await check(`page UI: ${N} greedy tokens equal native aigc text --greedy`, async () => {
    const want = native(['--prompt', PROMPT, '-n', String(N), '--greedy']);
    await page.click('#load-btn');
    await page.waitForFunction(() => document.body.dataset.state === 'loaded' || document.body.dataset.state === 'error');
    if (await page.evaluate(() => document.body.dataset.state) === 'error') throw new Error(await page.textContent('#error'));
    await page.check('#mode-raw');
    await page.fill('#temperature', '0');
    await page.fill('#max-tokens', String(N));
    await page.fill('#repeat-penalty', '1');
    await page.fill('#prompt', PROMPT);
    await page.click('#send-btn');
    await page.waitForFunction(() => document.body.dataset.state === 'generating');
    await page.waitForFunction(() => document.body.dataset.state !== 'generating');
    const text = await page.textContent('#messages .msg.assistant:last-child .content');
    mkdirSync(join(ROOT, 'target/browser'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'target/browser/page-after-generation.png'), fullPage: true });
    assertEq(text.trim(), want.text.trim(), 'greedy text through the page');
  });

  await check('seeded sampled run equals native tokens (same seed)', async () => {
    const opts = { temperature: 0.9, top_k: 40, top_p: 0.95, min_p: 0.05, repetition_penalty: 1.1, seed: 1234 };
    const want = native(['--prompt', PROMPT, '-n', '16', '--temperature', '0.9', '--top-k', '40', '--top-p', '0.95',
      '--min-p', '0.05', '--repeat-penalty', '1.1', '--seed', '1234']);
    const got = await page.evaluate(async ([prompt, o]) => {
      const r = await window.aigcApp.engine.completions.create({ prompt, max_tokens: 16, ...o });
      return { tokens: r.aigc.tokens, usage: r.usage };
    }, [PROMPT, opts]);
    const { prefill_tokens_per_s: p, decode_tokens_per_s: d } = got.usage;
    console.log(`     in the browser: prefill ${p.toFixed(2)} tokens/s, decode ${d.toFixed(2)} tokens/s`);
    assertEq(got.tokens, want.tokens, 'sampled tokens');
  });

  await check('abort mid-stream, then the next generation succeeds', async () => {
    const r = await page.evaluate(async (prompt) => {
      const engine = window.aigcApp.engine;
      const ctl = new AbortController();
      let pieces = 0;
      let finish = null;
      for await (const c of await engine.completions.create({ prompt, max_tokens: 24, temperature: 0, stream: true, signal: ctl.signal })) {
        if (c.choices[0].text) pieces++;
        if (pieces === 2) ctl.abort();
        if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
      }
      const again = await engine.completions.create({ prompt, max_tokens: 4, temperature: 0 });
      return { pieces, finish, again: again.aigc.tokens.length };
    }, PROMPT);
    if (r.finish !== 'abort') throw new Error(`finish_reason ${r.finish} after abort`);
    if (r.pieces > 4) throw new Error(`${r.pieces} pieces arrived after the abort`);
    if (r.again !== 4) throw new Error(`second generation gave ${r.again} tokens`);
  });

  // Three engines beside the page's: in the page itself (worker: false), and in a worker with a
  // forced 4 MiB storage-binding limit (every weight split into row blocks), which then loses
  // its device and must recover by loading the model again.
  const MODEL_URL = `/models/${MODEL.split('/').pop()}`;
  const greedy8 = () => native(['--prompt', PROMPT, '-n', '8', '--greedy']).tokens;

  await check('in-page engine (worker: false) gives the native greedy tokens', async () => {
    const want = greedy8();
    const got = await page.evaluate(async ([url, prompt]) => {
      const { Engine } = await import('./aigc.js');
      const e = await Engine.create({ worker: false });
      await e.load(url);
      const r = await e.completions.create({ prompt, max_tokens: 8, temperature: 0 });
      await e.unload();
      return r.aigc.tokens;
    }, [MODEL_URL, PROMPT]);
    assertEq(got, want, 'in-page greedy tokens');
  });

  await check('forced 4 MiB storage-binding limit: same greedy tokens', async () => {
    const want = greedy8();
    const got = await page.evaluate(async ([url, prompt]) => {
      const { Engine } = await import('./aigc.js');
      const e = await Engine.create({ maxStorageBinding: 4 << 20 });
      window.splitEngine = e;
      await e.load(url);
      return (await e.completions.create({ prompt, max_tokens: 8, temperature: 0 })).aigc.tokens;
    }, [MODEL_URL, PROMPT]);
    assertEq(got, want, 'greedy tokens with split weights');
  });

  await check('device loss: DeviceLostError, then loading again recovers', async () => {
    const want = greedy8();
    const r = await page.evaluate(async ([url, prompt]) => {
      const e = window.splitEngine;
      const lost = new Promise((ok) => { e.onDeviceLost = ok; });
      await e._simulateDeviceLoss();
      const event = await Promise.race([lost, new Promise((ok) => setTimeout(() => ok(null), 30000))]);
      let failed = null;
      try {
        await e.completions.create({ prompt, max_tokens: 4, temperature: 0 });
      } catch (err) {
        failed = err.name;
      }
      await e.load(url);
      const again = (await e.completions.create({ prompt, max_tokens: 8, temperature: 0 })).aigc.tokens;
      await e.unload();
      return { event: event && event.name, failed, again };
    }, [MODEL_URL, PROMPT]);
    if (r.event !== 'DeviceLostError') throw new Error(`onDeviceLost got ${r.event}`);
    if (r.failed !== 'DeviceLostError') throw new Error(`generation after the loss gave ${r.failed}`);
    assertEq(r.again, want, 'greedy tokens after reloading on a new device');
  });

  await check('Image tab: 2 candidates with the pixels of native aigc image (same seed)', async () => {
    const o = { prompt: 'a lighthouse at dusk', negative: 'blurry', size: '64x64', steps: 2, cfg: 7.5, seed: 7, count: 2, scheduler: 'euler_a' };
    const want = nativeImages(join(ROOT, 'target/fixtures/sd-tiny-v1'), o, 'native');
    await page.click('#tab-image');
    await page.fill('#image-model-url', 'fixtures/sd-tiny-v1/');
    await loadImageModel(page);
    const imgs = await generateOnPage(page, o);
    await page.screenshot({ path: join(ROOT, 'target/browser/page-after-image.png'), fullPage: true });
    // Compare pixels (PSNR reported when they differ).
    const cmp = { count: imgs.length, res: [] };
    for (let k = 0; k < Math.min(imgs.length, want.length); k++) cmp.res.push(await comparePngs(page, imgs[k], want[k]));
    console.log(`     browser vs native: ${JSON.stringify(cmp)}`);
    if (cmp.count !== 2) throw new Error(`${cmp.count} pictures on the page`);
    // The fixture folder has taesd/: the page showed a TAESD preview at every step.
    assertEq(await page.evaluate(() => document.body.dataset.previewSteps), '2', 'steps with previews shown');
    for (const r of cmp.res) if (r.diff !== 0) throw new Error(`pixels differ from native: ${JSON.stringify(cmp.res)}`);
  });

  await check('Image tab: f16 activations refused by name where the adapter has no shader-f16, and not offered by the page', async () => {
    const r = await page.evaluate(async () => {
      const engine = await window.aigcApp.ready;
      const option = document.querySelector('#image-activations option[value="f16"]');
      try {
        await engine.images.generate({ prompt: 'a fox', size: '64x64', steps: 1, seed: 1, activations: 'f16' });
        return { f16: engine.adapter.shader_f16, disabled: option.disabled, error: null };
      } catch (e) {
        return { f16: engine.adapter.shader_f16, disabled: option.disabled, error: e.name, message: e.message };
      }
    });
    console.log(`     ${JSON.stringify(r)}`);
    if (r.f16) {
      // A GPU with shader-f16: the request runs and the option is offered.
      if (r.error || r.disabled) throw new Error(`f16 adapter: ${JSON.stringify(r)}`);
    } else {
      assertEq(r.error, 'InvalidOptionError', 'error class');
      if (!r.message.includes('shader-f16')) throw new Error(`message does not name the feature: ${r.message}`);
      assertEq(r.disabled, true, 'f16 option disabled');
    }
  });

  await check('Image tab: a single-file GGUF chosen from disk loads (f32) and makes the picture native aigc image makes', async () => {
    const gguf = join(ROOT, 'target/fixtures/sd-tiny-v1-single/sd-tiny-v1.q8_0.gguf');
    const o = { prompt: 'a lighthouse at dusk', negative: '', size: '64x64', steps: 2, cfg: 7.5, seed: 3, count: 1, scheduler: 'euler', quant: 'f32' };
    const want = nativeImages(gguf, o, 'native-gguf');
    await page.click('#tab-image');
    await page.setInputFiles('#image-model-file', gguf);
    await page.fill('#image-config-url', 'fixtures/sd-tiny-v1-single/');
    await loadImageModel(page, o.quant);
    // Byte equality with native needs every transcendental to be ours (shaders/activation.wgsl):
    // WGSL's exp/tanh differ in the last bit between lavapipe and SwiftShader.
    await expectNativePicture(page, await generateOnPage(page, o), want[0], 'single-file GGUF');
    await page.setInputFiles('#image-model-file', []);
  });

  await check('Image tab: an SD 2.x diffusers folder chosen from disk makes the picture native aigc image makes', async () => {
    const dir = join(ROOT, 'target/fixtures/sd-tiny-v2');
    const o = { prompt: 'a red barn', negative: '', size: '64x64', steps: 2, cfg: 5, seed: 11, count: 1, scheduler: 'dpmpp_2m', quant: 'q8_0' };
    const want = nativeImages(dir, o, 'native-v2-folder');
    await page.click('#tab-image');
    await page.setInputFiles('#image-model-folder', dir);
    await loadImageModel(page, o.quant);
    await expectNativePicture(page, await generateOnPage(page, o), want[0], 'folder');
    // (setInputFiles cannot clear a webkitdirectory input.)
    await page.evaluate(() => {
      const input = document.querySelector('#image-model-folder');
      input.value = '';
      input.dispatchEvent(new Event('change'));
    });
  });

  await check('a malformed file gives ModelFormatError on the page', async () => {
    await page.click('#tab-text');
    const bad = Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(40, 0xff)]);
    await page.setInputFiles('#model-file', { name: 'broken.gguf', mimeType: 'application/octet-stream', buffer: bad });
    const clicked = await page.evaluate(() => document.body.dataset.state);
    if (clicked !== 'loading' && clicked !== 'error') await page.click('#load-btn');
    await page.waitForFunction(() => (document.querySelector('#error')?.textContent || '').includes('ModelFormatError'));
  });
} finally {
  await browser.close();
  server.kill();
}
finish();
