/*
  The page's Image tab: load a Stable Diffusion diffusers folder or single-file checkpoint by URL,
  or a file or folder chosen / dropped from disk, generate one or several
  candidates (a grid) with a per-step progress bar, stop, download as PNG, and click a picture to
  refine it with img2img. Uses the same Engine (worker, error classes) as the Text tab, through
  window.aigcApp (app.js). For tests: document.body.dataset.imageState ∈
  idle|loading|loaded|generating|done|error.
*/
const $ = (id) => document.getElementById(id);
const ui = {
  tabText: $('tab-text'), tabImage: $('tab-image'), textPanel: $('text-panel'), imagePanel: $('image-panel'),
  url: $('image-model-url'), quant: $('image-quant'), loadBtn: $('image-load-btn'),
  file: $('image-model-file'), folder: $('image-model-folder'), drop: $('image-drop'), config: $('image-config-url'),
  prompt: $('image-prompt'), negative: $('image-negative'), steps: $('image-steps'), cfg: $('image-cfg'),
  seed: $('image-seed'), count: $('image-count'), size: $('image-size'), scheduler: $('image-scheduler'),
  activations: $('image-activations'),
  strength: $('image-strength'), initLabel: $('image-init-label'), initClear: $('image-init-clear'),
  stopBtn: $('image-stop-btn'), generateBtn: $('image-generate-btn'), progress: $('image-progress'),
  progressLabel: $('image-progress-label'), grid: $('image-grid'),
};

let loaded = false;
let running = null; // AbortController of the generation in flight
let init = null;    // { blob, seed } of the picture being refined (img2img), or null
let previews = false; // the loaded folder has taesd/: show a TAESD picture at every step
let picked = null;    // what was last chosen or dropped from disk: a File, or a folder {path: File}
const app = window.aigcApp;

function setState(s) {
  document.body.dataset.imageState = s;
  ui.generateBtn.disabled = !loaded || !!running;
  ui.loadBtn.disabled = !!running;
  ui.stopBtn.disabled = !running;
}

function selectTab(image) {
  ui.tabText.setAttribute('aria-selected', String(!image));
  ui.tabImage.setAttribute('aria-selected', String(image));
  ui.textPanel.hidden = image;
  ui.imagePanel.hidden = !image;
}
ui.tabText.addEventListener('click', () => selectTab(false));
ui.tabImage.addEventListener('click', () => selectTab(true));

function fail(e) {
  setState('error');
  ui.progressLabel.textContent = `${e?.name || 'Error'}: ${e?.message || e}`;
  if (e?.name !== 'AbortError') app.showError?.(e);
}

// f16 activations only where the adapter can run f16 shaders (not SwiftShader).
function offerF16(engine) {
  const f16 = ui.activations.querySelector('option[value="f16"]');
  f16.disabled = !engine?.adapter?.shader_f16;
  if (f16.disabled && ui.activations.value === 'f16') ui.activations.value = 'f32';
}
app.ready.then(offerF16, () => offerF16(null));

async function load() {
  try {
    const engine = await app.ready;
    offerF16(engine);
    setState('loading');
    ui.progressLabel.textContent = 'Loading the image model…';
    ui.progress.removeAttribute('value');
    // A chosen file or folder takes precedence over the URL; a single file's tokenizer/configs
    // come from the config URL.
    const src = picked || ui.url.value.trim();
    const config = ui.config.value.trim() || undefined;
    const info = await engine.images.load(src, { quant: ui.quant.value, config });
    loaded = true;
    previews = !!info.previews;
    Object.assign(ui.progress, { max: 1, value: 1 });
    ui.progressLabel.textContent = `Loaded: ${(info.gpu_weight_bytes / 1048576).toFixed(1)} MiB on the GPU (${info.quant})`
      + (previews ? ', with TAESD previews' : '');
    setState('loaded');
  } catch (e) {
    loaded = false;
    Object.assign(ui.progress, { max: 1, value: 0 });
    fail(e);
  }
}
ui.loadBtn.addEventListener('click', load);
ui.file.addEventListener('change', () => { picked = ui.file.files[0] || null; });
ui.url.addEventListener('input', () => { picked = null; ui.file.value = ''; ui.folder.value = ''; });
ui.folder.addEventListener('change', () => { picked = ui.folder.files.length ? ui.folder.files : null; });

// Every file under a dropped directory, as [path relative to it, File].
async function walkDir(dir, prefix = '') {
  const reader = dir.createReader();
  const out = [];
  for (;;) { // readEntries hands the entries out in batches until an empty one
    const batch = await new Promise((ok, no) => reader.readEntries(ok, no));
    if (!batch.length) return out;
    for (const e of batch) {
      if (e.isDirectory) out.push(...await walkDir(e, `${prefix}${e.name}/`));
      else out.push([`${prefix}${e.name}`, await new Promise((ok, no) => e.file(ok, no))]);
    }
  }
}
ui.drop.addEventListener('dragover', (ev) => ev.preventDefault());
ui.drop.addEventListener('drop', async (ev) => {
  ev.preventDefault();
  const entry = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry?.()).find(Boolean);
  try {
    if (entry?.isDirectory) {
      picked = Object.fromEntries(await walkDir(entry));
    } else if (ev.dataTransfer.files.length) {
      ui.file.files = ev.dataTransfer.files;
      picked = ui.file.files[0];
    } else {
      return;
    }
  } catch (e) {
    fail(e);
    return;
  }
  load();
});

function setInit(next) {
  init = next;
  ui.initLabel.textContent = init ? `Refining seed ${init.seed} (img2img, strength ${ui.strength.value})` : 'Text to image';
  ui.initClear.hidden = !init;
}
ui.initClear.addEventListener('click', () => setInit(null));
ui.strength.addEventListener('input', () => setInit(init));

// While generating: each candidate's TAESD preview of this step, in the grid's place.
function showPreviews(blobs) {
  const imgs = [...ui.grid.querySelectorAll('img.preview')];
  if (imgs.length !== blobs.length) {
    ui.grid.replaceChildren(...blobs.map(() => {
      const fig = document.createElement('figure');
      fig.append(Object.assign(document.createElement('img'), { className: 'preview', alt: 'preview' }));
      return fig;
    }));
  }
  ui.grid.querySelectorAll('img.preview').forEach((img, k) => {
    if (img.src) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blobs[k]);
  });
}

function show(result) {
  ui.grid.replaceChildren();
  for (const d of result.data) {
    const url = URL.createObjectURL(d.blob);
    const fig = document.createElement('figure');
    const img = Object.assign(document.createElement('img'), { src: url, alt: `seed ${d.seed}`, title: 'Click to refine with img2img' });
    img.dataset.seed = String(d.seed);
    img.dataset.b64 = d.b64_json;
    img.addEventListener('click', () => setInit({ blob: d.blob, seed: d.seed }));
    const cap = document.createElement('figcaption');
    const a = Object.assign(document.createElement('a'), { href: url, download: `aigc-${d.seed}.png`, textContent: 'Download PNG' });
    cap.append(Object.assign(document.createElement('span'), { textContent: `seed ${d.seed}` }), a);
    fig.append(img, cap);
    ui.grid.append(fig);
  }
}

async function generate() {
  const engine = await app.ready;
  running = new AbortController();
  setState('generating');
  delete document.body.dataset.previewSteps;
  const t0 = performance.now();
  Object.assign(ui.progress, { max: 1, value: 0 });
  ui.progressLabel.textContent = 'Encoding the prompt…';
  try {
    const r = await engine.images.generate({
      prompt: ui.prompt.value, negative_prompt: ui.negative.value, n: Number(ui.count.value),
      size: ui.size.value, steps: Number(ui.steps.value), guidance_scale: Number(ui.cfg.value),
      seed: Number(ui.seed.value), scheduler: ui.scheduler.value, activations: ui.activations.value,
      image: init?.blob, strength: init ? Number(ui.strength.value) : undefined,
      signal: running.signal,
      previews,
      onStep: ({ step, steps, previews: shots }) => {
        if (shots?.length) { showPreviews(shots); document.body.dataset.previewSteps = String(step); }
        Object.assign(ui.progress, { max: steps, value: step });
        const per = (performance.now() - t0) / 1000 / step;
        ui.progressLabel.textContent = `Step ${step}/${steps}, ${per.toFixed(2)} s/step`;
      },
    });
    show(r);
    ui.progressLabel.textContent = `Done in ${r.aigc.total_seconds.toFixed(1)} s (${r.aigc.seconds_per_step.toFixed(2)} s/step)`;
    running = null;
    setState('done');
  } catch (e) {
    running = null;
    fail(e);
  }
}
ui.generateBtn.addEventListener('click', generate);
ui.stopBtn.addEventListener('click', () => running?.abort());
setState('idle');
