/*
  aigc page logic: model picker (URL presets, drag-and-drop .gguf), load progress (download,
  verify, upload, compile), the cached-models list (load, delete, storage used/quota), streamed
  chat and raw completion, sampling settings, GPU panel, and a banner that explains every named
  error. A full storage quota is not an error of the load: it shows as #cache-notice.
  Talks only to ./aigc.js (Engine, AigcError). For tests: window.aigcApp = { engine, ready } and
  document.body.dataset.state ∈ init|ready|loading|loaded|generating|error.
*/
const $ = (id) => document.getElementById(id);
const h = (tag, cls, text) => Object.assign(document.createElement(tag),
  cls ? { className: cls } : {}, text != null ? { textContent: text } : {});
const ui = {
  status: $('status'), error: $('error'), errorName: $('error-name'), errorMessage: $('error-message'),
  errorHelp: $('error-help'), errorAction: $('error-action'), errorDismiss: $('error-dismiss'),
  preset: $('model-preset'), url: $('model-url'), file: $('model-file'), drop: $('drop-zone'),
  fileChosen: $('file-chosen'), fileName: $('file-name'), fileClear: $('file-clear'),
  loadBtn: $('load-btn'), loadCancel: $('load-cancel'), progress: $('progress'),
  progressLabel: $('progress-label'), modelInfo: $('model-info'),
  messages: $('messages'), composer: $('composer'), prompt: $('prompt'), raw: $('mode-raw'),
  sendBtn: $('send-btn'), stopBtn: $('stop-btn'), newChat: $('new-chat-btn'),
  maxTokens: $('max-tokens'), temperature: $('temperature'), topK: $('top-k'), topP: $('top-p'),
  minP: $('min-p'), repeatPenalty: $('repeat-penalty'), seed: $('seed'), seedRandom: $('seed-random'),
  stop: $('stop'), system: $('system-prompt'), adapter: $('adapter'),
  cacheEnabled: $('cache-enabled'), cacheNotice: $('cache-notice'), cacheUsage: $('cache-usage'),
  cacheList: $('cache-list'),
  sidebarToggle: $('sidebar-toggle'), sidebarBody: $('sidebar-body'),
};

let Engine = null;       // the Engine class once aigc.js is imported (cache calls are static)
let engine = null;       // Engine once created
let engineFailed = false;
let model = null;        // info of the loaded model, null when none usable
let file = null;         // a chosen/dropped File; takes precedence over the URL
let lastSource = null;   // what the last load used, for "Reload model" / "Try again"
let lastFromCache = false; // …and whether it was a name from the cached-models list
let loading = null;      // AbortController of the load in flight
let generating = null;   // AbortController of the generation in flight
let history = [];        // chat turns sent back to the model: [{ role, content }]
let conversation = 0;    // bumped by "New chat" so a late stream cannot write into the new one
let shownError = null;
const app = { engine: null, ready: null, showError: null };
window.aigcApp = app;

// ---------- state, status line, buttons ----------
const baseState = () => (generating ? 'generating' : loading ? 'loading' : model ? 'loaded'
  : engine ? 'ready' : engineFailed ? 'error' : 'init');

function setState(state) {
  document.body.dataset.state = state;
  ui.status.textContent = {
    init: 'Starting…', ready: 'Ready — load a model', loading: 'Loading…',
    loaded: `Ready — ${model?.name || 'model loaded'}`, generating: 'Generating…', error: 'Error',
  }[state];
  ui.loadBtn.disabled = !engine || !!loading || !!generating;
  ui.loadCancel.hidden = !loading;
  ui.sendBtn.disabled = !model || !!loading || !!generating;
  ui.stopBtn.disabled = !generating;
}

// ---------- errors ----------
const tryAgain = (label = 'Try again') => lastSource && { label, run: () => loadModel(lastSource, lastFromCache) };
const HELP = {
  WebGpuUnavailableError: () => ['Your browser has no WebGPU. Use a recent Chrome/Edge, or Chrome with --enable-unsafe-webgpu on Linux (Safari 26 and Firefox 141+ on Windows also have it).'],
  ModelFormatError: () => ['This is not a usable GGUF file (wrong format, or the download was cut short). Check the URL or the file, or pick another model.'],
  UnsupportedModelError: () => ['aigc runs LLaMA-family models (llama, qwen2, qwen3) with F32/F16/BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K or Q6_K weights. Pick one of the presets or another quantization of this model.'],
  ContextOverflowError: () => ["The conversation is longer than the model's context: start a new chat (or lower Max tokens).", { label: 'New chat', run: newChat }],
  DeviceLostError: () => ['The GPU device was lost (driver reset, sleep, or memory pressure). Reload the model to continue; the page and your chat stay as they are.', tryAgain('Reload model')],
  StorageQuotaError: () => ["The browser would not give this site enough storage for the model. Free some disk space, delete cached models (Cached models, in the sidebar), or clear this site's data."],
  CacheCorruptError: () => ['The copy of this model kept in the browser failed its integrity check even after downloading the damaged part again, and was deleted. Load the model again, or untick "Keep a copy" to load it straight from the network.', tryAgain()],
  InvalidOptionError: () => ['A setting is out of range or a field is missing. Check the model URL and the Settings panel (temperature ≥ 0, top-p and min-p between 0 and 1, max tokens ≥ 1).'],
  TokenizerError: () => ["The model's tokenizer could not handle this text, or its tokenizer type is not supported. Try other text or another model."],
  ChatTemplateError: () => ["This model's chat template could not be used. Switch on Raw completion to prompt the model directly.", { label: 'Use raw completion', run: () => { ui.raw.checked = true; syncMode(); hideError(); } }],
  OutOfMemoryError: () => ['The GPU ran out of memory for this model. Close other GPU-heavy tabs, or pick a smaller model or a smaller quantization.'],
  GpuError: () => ['The GPU reported an error. Reload the model; if it happens again, update your browser or GPU driver.', tryAgain('Reload model')],
  IoError: () => ['The model could not be downloaded or read. Check the URL and your connection; a remote server must allow cross-origin requests (Hugging Face resolve/main URLs do).', tryAgain()],
  AbortError: () => ['The operation was cancelled. Start it again when you are ready.'],
  EngineLoadError: () => ['The engine (aigc.js and its WebAssembly) could not be loaded. Serve the page with ./build.sh serve, and reload.'],
};

function asError(e) {
  if (e instanceof Error) return e;
  const err = new Error(typeof e === 'string' ? e : e?.message ?? JSON.stringify(e));
  if (typeof e?.name === 'string') err.name = e.name;
  return err;
}

const named = (name, message) => Object.assign(new Error(message), { name });

function showError(e) {
  const err = asError(e);
  const name = err.name && err.name !== 'Error' ? err.name : 'Error';
  const [help, action] = (HELP[name] || (() => ['Something unexpected went wrong; details are in the browser console. Reloading the page may help.']))();
  console.error(err);
  if (name === 'DeviceLostError') model = null;
  shownError = name;
  ui.errorName.textContent = `${name}:`;
  ui.errorMessage.textContent = err.message || '';
  ui.errorHelp.textContent = help;
  ui.errorAction.hidden = !action;
  if (action) {
    ui.errorAction.textContent = action.label;
    ui.errorAction.onclick = () => { hideError(); action.run(); };
  }
  ui.error.hidden = false;
  setState('error');
}

function hideError() {
  if (ui.error.hidden) return;
  ui.error.hidden = true;
  shownError = null;
  setState(baseState());
}

app.showError = showError;
ui.errorDismiss.addEventListener('click', hideError);
window.addEventListener('error', (ev) => showError(ev.error || ev.message));
window.addEventListener('unhandledrejection', (ev) => { ev.preventDefault(); showError(ev.reason); });

// ---------- GPU panel ----------
const fmtBytes = (n) => {
  if (typeof n !== 'number') return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
};
const fmtNum = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : n ?? '—');
const yesNo = (b) => (b ? 'yes' : 'no');

function renderAdapter(a, err) {
  ui.adapter.replaceChildren();
  if (!a) {
    ui.adapter.append(h('p', 'unavailable', 'WebGPU: not available'));
    if (err) ui.adapter.append(h('p', 'muted', `${asError(err).name}: ${asError(err).message}`));
    return;
  }
  const table = h('table');
  const rows = [
    ['Backend', a.backend], ['Device type', a.device_type], ['Driver', a.driver || '—'],
    ['Max storage binding', fmtBytes(a.max_storage_binding)], ['Max buffer', fmtBytes(a.max_buffer)],
    ['Workgroup storage', fmtBytes(a.max_workgroup_storage)],
    ['Invocations / workgroup', fmtNum(a.max_invocations_per_workgroup)],
    ['Workgroups / dim', fmtNum(a.max_workgroups_per_dim)],
    ['Storage buffers / stage', fmtNum(a.max_storage_buffers_per_stage)],
    ['shader-f16', yesNo(a.shader_f16)], ['subgroups', yesNo(a.subgroups)],
  ];
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.append(Object.assign(h('th', null, k), { scope: 'row' }));
    tr.insertCell().textContent = v ?? '—';
  }
  ui.adapter.append(h('p', 'name', a.name || 'Unknown adapter'), table);
}

// ---------- model picker and loading ----------
const MB = (n) => (n / 1e6).toFixed(1);
const PHASES = {
  init: 'Starting the engine', download: 'Downloading', verify: 'Checking the stored copy', store: 'Storing a copy',
  upload: 'Uploading to GPU', compile: 'Compiling shaders',
};

function onProgress({ phase, done = 0, total = 0, error } = {}) {
  if (error) showCacheNotice(error);
  if (total > 0) Object.assign(ui.progress, { max: total, value: Math.min(done, total) });
  else ui.progress.removeAttribute('value'); // indeterminate
  const what = PHASES[phase] || phase || 'Working';
  const bytes = ['download', 'verify', 'store', 'upload'].includes(phase);
  const amount = bytes ? `${MB(done)}${total ? ` / ${MB(total)}` : ''} MB` : total ? `${done} / ${total}` : '';
  ui.progressLabel.textContent = `${what}… ${amount}`.trim();
}

// ---------- model cache ----------
// The load itself succeeded when this shows: say so, so that nobody waits for a fix.
function showCacheNotice(error) {
  ui.cacheNotice.textContent = `${error.name}: ${error.message}. The model was loaded straight from the network without keeping a copy, so it will be downloaded again next time.`;
  ui.cacheNotice.hidden = false;
}

async function refreshCache() {
  if (!Engine) return;
  try {
    const [entries, est] = await Promise.all([Engine.cached(), navigator.storage?.estimate?.().catch(() => null)]);
    ui.cacheUsage.textContent = est?.quota
      ? `${fmtBytes(est.usage)} used of ${fmtBytes(est.quota)} this site may store`
      : 'Storage use unknown in this browser';
    ui.cacheList.replaceChildren(...entries.map(cacheItem));
    if (!entries.length) ui.cacheList.append(h('li', 'empty-note', 'None yet: models loaded by URL are kept here.'));
  } catch (e) {
    ui.cacheUsage.textContent = `Cache unavailable: ${asError(e).message}`;
  }
}

function cacheItem(entry) {
  const li = h('li');
  li.dataset.name = entry.name;
  li.dataset.complete = String(entry.complete);
  const label = h('span', 'cache-name', entry.name);
  label.title = entry.url || 'stored from a file';
  label.append(h('span', 'cache-size', entry.complete ? `${MB(entry.size)} MB`
    : `partial: ${MB(entry.bytesDone)} of ${MB(entry.size)} MB (${entry.url ? 'resumes on load' : 'load its file again'})`));
  const load = h('button', 'small', 'Load');
  load.type = 'button';
  load.disabled = !entry.complete && !entry.url;
  load.addEventListener('click', () => loadModel(entry.name, true));
  const del = h('button', 'small ghost', 'Delete');
  del.type = 'button';
  del.setAttribute('aria-label', `Delete ${entry.name} from this browser`);
  del.addEventListener('click', async () => {
    del.disabled = true;
    try { await Engine.deleteCached(entry.name); } catch (e) { showError(e); }
    refreshCache();
  });
  li.append(label, load, del);
  return li;
}

function chooseFile(f) {
  file = f || null;
  ui.fileChosen.hidden = !file;
  ui.drop.classList.toggle('has-file', !!file);
  if (file) ui.fileName.textContent = `${file.name} (${MB(file.size)} MB)`;
  else ui.file.value = '';
}

ui.preset.addEventListener('change', () => {
  chooseFile(null);
  if (ui.preset.value) ui.url.value = ui.preset.value;
  else ui.url.focus();
});
ui.url.addEventListener('input', () => {
  chooseFile(null);
  const match = [...ui.preset.options].find((o) => o.value && o.value === ui.url.value.trim());
  ui.preset.value = match ? match.value : '';
});
ui.file.addEventListener('change', () => chooseFile(ui.file.files[0]));
ui.fileClear.addEventListener('click', () => chooseFile(null));

const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes('Files');
for (const type of ['dragenter', 'dragover']) {
  ui.drop.addEventListener(type, (ev) => { if (hasFiles(ev)) { ev.preventDefault(); ui.drop.classList.add('over'); } });
}
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (ev) => {
  ev.preventDefault();
  ui.drop.classList.remove('over');
  if (ev.dataTransfer.files.length) chooseFile(ev.dataTransfer.files[0]);
});
// A file dropped next to the zone would otherwise make the browser navigate to it.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
}

function currentSource() {
  if (file) return file;
  const url = ui.url.value.trim();
  if (!url) throw named('InvalidOptionError', 'Enter a model URL or choose a .gguf file.');
  // Resolve against the page so a relative URL means the same thing inside the engine's worker.
  return new URL(url, document.baseURI).href;
}

// fromCache: `source` is a cached model's name, loaded from the cache whatever the checkbox says.
async function loadModel(source, fromCache = false) {
  if (!engine || loading || generating) return;
  lastSource = source;
  lastFromCache = fromCache;
  hideError();
  model = null;
  ui.modelInfo.hidden = true;
  ui.cacheNotice.hidden = true;
  loading = new AbortController();
  setState('loading');
  onProgress({ phase: 'download', done: 0, total: 0 });
  try {
    // Unticked: no copy of a URL; a File is never copied by default (the user already has it).
    const cache = ui.cacheEnabled.checked || fromCache ? undefined : false;
    const info = await engine.load(source, { onProgress, signal: loading.signal, cache });
    loading = null;
    model = info;
    Object.assign(ui.progress, { max: 1, value: 1 });
    ui.progressLabel.textContent = `Loaded ${MB(info.weight_bytes || 0)} MB of weights`;
    ui.modelInfo.textContent = [info.name, info.architecture, `${info.n_layer} layers`, `${info.n_embd} wide`,
      `vocab ${fmtNum(info.vocab)}`, `context ${fmtNum(info.ctx)} tokens`,
      info.chat_template ? 'chat template' : 'no chat template: raw completion'].join(' · ');
    ui.modelInfo.hidden = false;
    const c = info.cache || {};
    if (c.error) showCacheNotice(c.error);
    else if (c.repairedFrom != null) {
      ui.cacheNotice.textContent = `The stored copy was damaged from byte ${fmtNum(c.repairedFrom)} on; that part was downloaded again.`;
      ui.cacheNotice.hidden = false;
    }
    if (!info.chat_template && !ui.raw.checked) { ui.raw.checked = true; syncMode(); }
    setState('loaded');
  } catch (e) {
    loading = null;
    Object.assign(ui.progress, { max: 1, value: 0 });
    const cancelled = asError(e).name === 'AbortError';
    ui.progressLabel.textContent = cancelled ? 'Loading cancelled' : 'Load failed';
    if (cancelled) setState(baseState()); else showError(e);
  }
  refreshCache();
}

ui.loadBtn.addEventListener('click', () => {
  try { loadModel(currentSource()); } catch (e) { showError(e); }
});
ui.loadCancel.addEventListener('click', () => loading?.abort());

// ---------- settings ----------
function num(input, label, { int = false, min = -Infinity, max = Infinity } = {}) {
  const text = input.value.trim();
  if (text === '') return undefined; // the engine's default
  const n = Number(text);
  if (Number.isFinite(n) && (!int || Number.isInteger(n)) && n >= min && n <= max) return n;
  throw named('InvalidOptionError', `${label}: "${text}" is not a valid value.`);
}

function readOptions() {
  const o = {
    max_tokens: num(ui.maxTokens, 'Max tokens', { int: true, min: 1 }),
    temperature: num(ui.temperature, 'Temperature', { min: 0 }),
    top_k: num(ui.topK, 'Top-k', { int: true, min: 0 }),
    top_p: num(ui.topP, 'Top-p', { min: 0, max: 1 }),
    min_p: num(ui.minP, 'Min-p', { min: 0, max: 1 }),
    repetition_penalty: num(ui.repeatPenalty, 'Repetition penalty', { min: 0 }),
    seed: num(ui.seed, 'Seed', { int: true, min: 0, max: Number.MAX_SAFE_INTEGER }) ?? randomSeed(),
    stop: ui.stop.value.split(',').map((s) => s.trim().replace(/\\n/g, '\n').replace(/\\t/g, '\t')).filter(Boolean),
  };
  if (!o.stop.length) o.stop = undefined;
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0]; // an empty Seed field means a fresh one per reply
ui.seedRandom.addEventListener('click', () => { ui.seed.value = String(randomSeed()); });

function syncMode() {
  ui.prompt.placeholder = `${ui.raw.checked ? 'Prompt to continue, no chat template' : 'Message'} (Enter sends, Shift+Enter for a new line)`;
}
ui.raw.addEventListener('change', syncMode);

const wide = matchMedia('(min-width: 900px)');
function setSidebar(open) {
  ui.sidebarToggle.setAttribute('aria-expanded', String(open));
  ui.sidebarBody.classList.toggle('open', open);
}
ui.sidebarToggle.addEventListener('click', () => setSidebar(ui.sidebarToggle.getAttribute('aria-expanded') !== 'true'));

// ---------- chat ----------
function addMessage(role, text, raw) {
  ui.messages.querySelector('.empty')?.remove();
  const root = h('div', `msg ${role}${raw ? ' raw' : ''}`);
  const content = h('div', 'content', text);
  root.append(h('span', 'role', role === 'user' ? (raw ? 'Prompt' : 'You') : (raw ? 'Completion' : 'Assistant')), content);
  ui.messages.append(root);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return { root, content };
}

function setMeta(view, usage, finish, fallback) {
  const meta = h('div', 'meta');
  const tokens = usage?.completion_tokens ?? fallback.tokens;
  const rate = usage?.decode_tokens_per_s ?? fallback.rate;
  meta.textContent = `${tokens} tokens · ${Number.isFinite(rate) ? rate.toFixed(1) : '—'} tok/s · finish: ${finish || '—'}`;
  if (usage) meta.title = `prompt ${usage.prompt_tokens} tokens at ${usage.prefill_tokens_per_s?.toFixed?.(1) ?? '—'} tok/s`;
  view.root.append(meta);
}

async function send() {
  if (!model || loading || generating) return;
  const text = ui.prompt.value;
  if (!text.trim()) { ui.prompt.focus(); return; }
  const raw = ui.raw.checked;
  let options;
  try { options = readOptions(); } catch (e) { showError(e); return; }
  hideError();
  ui.prompt.value = '';
  const conv = conversation;
  const turn = { role: 'user', content: text };
  const system = ui.system.value.trim();
  const messages = [...(system ? [{ role: 'system', content: system }] : []), ...history, turn];
  addMessage('user', text, raw);
  const view = addMessage('assistant', '', raw);
  view.root.classList.add('streaming');
  generating = new AbortController();
  ui.messages.setAttribute('aria-busy', 'true');
  setState('generating');

  let out = '', finish = null, usage = null, pieces = 0, failure = null;
  const t0 = performance.now();
  const done = () => ({ tokens: pieces, rate: pieces / ((performance.now() - t0) / 1000) });
  try {
    const request = { ...options, stream: true, signal: generating.signal };
    const stream = raw
      ? await engine.completions.create({ prompt: text, ...request })
      : await engine.chat.completions.create({ messages, ...request });
    for await (const chunk of stream) {
      const choice = chunk?.choices?.[0];
      const piece = raw ? choice?.text : choice?.delta?.content;
      if (piece) {
        const box = ui.messages;
        const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 48;
        out += piece;
        pieces++;
        view.content.textContent = out;
        if (atBottom) box.scrollTop = box.scrollHeight;
      }
      if (choice?.finish_reason) finish = choice.finish_reason;
      if (chunk?.usage) usage = chunk.usage;
    }
  } catch (e) {
    const name = asError(e).name;
    finish = name === 'AbortError' ? 'abort' : `error (${name})`;
    if (name !== 'AbortError') failure = e;
  }
  setMeta(view, usage, finish, done());
  // A stopped reply stays in the conversation, as it is shown.
  if (!failure && !raw && conv === conversation) history.push(turn, { role: 'assistant', content: out });
  view.root.classList.remove('streaming');
  view.root.classList.toggle('failed', !!failure);
  ui.messages.setAttribute('aria-busy', 'false');
  generating = null;
  if (failure) showError(failure);
  else { setState(shownError ? 'error' : baseState()); ui.prompt.focus({ preventScroll: true }); }
}

function newChat() {
  generating?.abort();
  conversation++;
  history = [];
  ui.messages.replaceChildren();
  ui.messages.append(h('p', 'empty', model ? 'New chat. Say something.' : 'Load a model, then say something.'));
  if (shownError === 'ContextOverflowError') hideError();
  ui.prompt.focus();
}

ui.composer.addEventListener('submit', (ev) => { ev.preventDefault(); send(); });
ui.prompt.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' || ev.shiftKey || ev.ctrlKey || ev.altKey || ev.metaKey || ev.isComposing) return;
  ev.preventDefault();
  send();
});
ui.stopBtn.addEventListener('click', () => generating?.abort());
ui.newChat.addEventListener('click', newChat);

// ---------- start ----------
setSidebar(wide.matches);
wide.addEventListener('change', (ev) => setSidebar(ev.matches));
syncMode();
setState('init');

app.ready = (async () => {
  const mod = await import('./aigc.js').catch((e) => {
    throw named('EngineLoadError', `could not load aigc.js: ${asError(e).message}`);
  });
  Engine = mod.Engine;
  refreshCache();
  // A lost device shows its error at once (not only at the next request), with 'Reload model'.
  const created = await mod.Engine.create({ onProgress, onDeviceLost: (e) => showError(e) });
  engine = app.engine = created;
  renderAdapter(created.adapter);
  ui.progressLabel.textContent = 'No model loaded';
  Object.assign(ui.progress, { max: 1, value: 0 });
  setState('ready');
  return created;
})();
app.ready.catch((e) => {
  engineFailed = true;
  renderAdapter(null, e);
  ui.progressLabel.textContent = 'Engine unavailable';
  showError(e);
});
