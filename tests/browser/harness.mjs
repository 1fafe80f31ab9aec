// What the browser test files share: the repository root, Chromium's flags (Debian's chromium,
// WebGPU on SwiftShader, no network chatter), a static server on a port, and a tiny check runner
// that ends with the plain line 'N passed, N failed'.
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'],
};

/** Start www/serve.mjs on `port`; resolves once it listens. */
export async function serve(port, env = {}) {
  const server = spawn(process.execPath, [join(ROOT, 'www/serve.mjs'), String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env },
  });
  process.on('exit', () => server.kill());
  await new Promise((ok) => server.stdout.once('data', ok));
  return server;
}

let passed = 0;
let failed = 0;

/** Run one named check, print ok/FAIL with its time; failures are counted, not thrown. */
export async function check(name, fn) {
  // AIGC_E2E_ONLY=text runs only the checks whose name contains it (for debugging one check).
  if (process.env.AIGC_E2E_ONLY && !name.includes(process.env.AIGC_E2E_ONLY)) return;
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${e.stack || e}`);
  }
}

export function assert(ok, what) {
  if (!ok) throw new Error(what);
}

export function assertEq(a, b, what) {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  if (x !== y) throw new Error(`${what}:\n  got  ${x}\n  want ${y}`);
}

/** Print the summary line and exit 1 if anything failed. */
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
