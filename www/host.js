// The engine host: owns the wasm module and answers the typed messages of aigc.js.
// Runs inside worker.js by default, or in the page when Engine.create({ worker: false }).
//
// Requests:  {id, type: 'create', maxStorageBinding} | {id, type: 'load', url | blob | bytes, ctx, numerics}
//            {id, type: 'generate', request} | {type: 'abort', target} | {id, type: 'unload'}
//            {id, type: 'loadImage', url | blob | files, name?, quant, config?} | {id, type: 'image', request, init?, mask?}
//            {id, type: 'simulateDeviceLoss'} (testing)
// Replies:   {id, type: 'progress', phase, done, total} | {id, type: 'chunk', text}
//            {id, type: 'done', result} | {id, type: 'error', error: {name, message}}
//            {type: 'lost', message} (unsolicited: the GPU device was lost)
// Requests run one at a time, in order; 'abort' is handled at once (it only sets a flag
// that generation checks between tokens).
import init, { WasmEngine } from './pkg/aigc.js';

export function createHost(post) {
  let engine = null;
  let queue = Promise.resolve();
  const aborted = new Set();

  const errorOf = (e) => ({
    name: (e && e.name && e.name !== 'Error') ? e.name : 'GpuError',
    message: (e && e.message) ? e.message : String(e),
  });

  async function handle(msg) {
    const { id } = msg;
    switch (msg.type) {
      case 'create': {
        await init();
        if (!('gpu' in navigator)) {
          throw Object.assign(new Error('this browser has no WebGPU (navigator.gpu is missing)'), { name: 'WebGpuUnavailableError' });
        }
        engine = await WasmEngine.create(msg.maxStorageBinding || 0, (message) => post({ type: 'lost', message }));
        return JSON.parse(engine.adapterInfo());
      }
      case 'load': {
        if (!engine) throw Object.assign(new Error('create the engine first'), { name: 'InvalidOptionError' });
        const progress = (done, total) => post({ id, type: 'progress', phase: done >= total ? 'compile' : 'upload', done, total });
        const ctx = msg.ctx || 0;
        const numerics = msg.numerics || 'f32';
        let info;
        if (msg.url) info = await engine.loadUrl(msg.url, ctx, numerics, progress);
        else if (msg.blob) info = await engine.loadBlob(msg.blob, ctx, numerics, progress);
        else info = await engine.loadBytes(new Uint8Array(msg.bytes), ctx, numerics, progress);
        if (aborted.delete(id)) {
          engine.unload();
          throw Object.assign(new Error('load aborted'), { name: 'AbortError' });
        }
        return JSON.parse(info);
      }
      case 'generate': {
        if (!engine) throw Object.assign(new Error('create the engine first'), { name: 'InvalidOptionError' });
        const onText = (text) => {
          post({ id, type: 'chunk', text });
          return !aborted.has(id);
        };
        try {
          return JSON.parse(await engine.generate(JSON.stringify(msg.request), onText));
        } finally {
          aborted.delete(id);
        }
      }
      case 'loadImage': {
        if (!engine) throw Object.assign(new Error('create the engine first'), { name: 'InvalidOptionError' });
        post({ id, type: 'progress', phase: 'upload', done: 0, total: 1 });
        const info = JSON.parse(msg.files
          ? await engine.loadImageFiles(msg.files, msg.quant || '')
          : msg.blob
            ? await engine.loadImageBlob(msg.blob, msg.name || 'checkpoint', msg.quant || '', msg.config || '')
            : await engine.loadImageModel(msg.url, msg.quant || '', msg.config));
        post({ id, type: 'progress', phase: 'upload', done: 1, total: 1 });
        return info;
      }
      case 'image': {
        if (!engine) throw Object.assign(new Error('create the engine first'), { name: 'InvalidOptionError' });
        const onStep = (step, steps, previews) => {
          // previews: PNG bytes of each candidate's TAESD preview (with request.previews).
          const buffers = Array.from(previews || [], (a) => a.buffer);
          post({ id, type: 'progress', phase: 'step', done: step, total: steps, previews: buffers });
          return !aborted.has(id);
        };
        const bytes = (b) => (b ? new Uint8Array(b) : undefined);
        try {
          const r = await engine.generateImage(JSON.stringify(msg.request), bytes(msg.init), bytes(msg.mask), onStep);
          return { summary: JSON.parse(r.summary), pngs: Array.from(r.pngs, (a) => a.buffer) };
        } finally {
          aborted.delete(id);
        }
      }
      case 'simulateDeviceLoss':
        if (engine) engine.simulateDeviceLoss();
        return null;
      case 'unload':
        if (engine) engine.unload();
        return null;
      default:
        throw Object.assign(new Error(`unknown request ${msg.type}`), { name: 'InvalidOptionError' });
    }
  }

  return function onMessage(msg) {
    if (msg.type === 'abort') {
      aborted.add(msg.target);
      return;
    }
    queue = queue.then(async () => {
      try {
        post({ id: msg.id, type: 'done', result: await handle(msg) });
      } catch (e) {
        post({ id: msg.id, type: 'error', error: errorOf(e) });
      }
    });
  };
}
