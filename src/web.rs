//! The browser binding: the only module that knows wasm-bindgen. It converts types, turns
//! Blobs and HTTP range requests into [`ByteSource`]s, forwards progress and text pieces to JS
//! callbacks, and turns engine errors into JS `Error`s whose `name` is [`Error::name`]
//! (`ModelFormatError`, …). Everything it calls is the same engine code the CLI runs.
//!
//! Async methods return Promises built with `future_to_promise` over an `Rc<RefCell<…>>`: a
//! wasm-bindgen `async fn` cannot borrow `self` across awaits. Calls are serialised by the
//! worker (`www/worker.js`), so the RefCell is never borrowed twice.

mod image;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::chat::Message;
use crate::engine::{Engine, LoadOptions};
use crate::error::{Error, Result};
use crate::generate::GenOptions;
use crate::gpu::Gpu;
use crate::kernels::actquant::Numerics;
use crate::sampling::{SamplerConfig, SamplerOverrides};
use crate::source::{ByteSource, SliceSource};

thread_local! {
    static LOST_CALLBACK: RefCell<Option<Function>> = const { RefCell::new(None) };
}

// The linker's constructors (cubecl registers its IR types with `inventory`, which uses them).
unsafe extern "C" {
    fn __wasm_call_ctors();
}

/// Run once when the module is instantiated.
///
/// Trap: unless some exported function calls `__wasm_call_ctors`, wasm-ld takes the module
/// for a "command" and wraps *every* export in a call to it (the `*.command_export` functions).
/// Every call from JS into the engine (and wasm-bindgen's glue makes one per JS object handed
/// over) then re-ran all of cubecl's constructors: most of a decode step in Chromium (a 2-layer
/// model spent ~450 ms of every token there). Calling it here, once, turns the wrapping off.
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: the linker's constructor list, run once, before any other engine code.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

/// A JS `Error` carrying the engine error's stable name.
fn js_error(e: Error) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(e.name());
    err.into()
}

fn js_msg(e: JsValue) -> String {
    e.as_string()
        .or_else(|| e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())))
        .unwrap_or_else(|| format!("{e:?}"))
}

/// A File or Blob (drag-and-drop): each read is a `Blob.slice` of just that range.
pub(crate) struct BlobSource(pub(crate) web_sys::Blob);

impl ByteSource for BlobSource {
    fn len(&self) -> u64 {
        self.0.size() as u64
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset as f64 + len as f64;
        let part = self.0.slice_with_f64_and_f64(offset as f64, end).map_err(|e| Error::Io(js_msg(e)))?;
        let buf = JsFuture::from(part.array_buffer()).await.map_err(|e| Error::Io(js_msg(e)))?;
        let bytes = Uint8Array::new(&buf).to_vec();
        if bytes.len() != len {
            return Err(Error::Io(format!("short read: {} of {len} bytes at {offset}", bytes.len())));
        }
        Ok(bytes)
    }
}

/// A URL read with HTTP Range requests (the server must answer 206 with Content-Range).
struct HttpSource {
    url: String,
    len: u64,
}

/// `fetch` from the page or from a worker, whichever this is.
async fn fetch(request: &web_sys::Request, url: &str) -> Result<web_sys::Response> {
    let global = js_sys::global();
    let promise = if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.fetch_with_request(request)
    } else if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.fetch_with_request(request)
    } else {
        return Err(Error::Io("no fetch in this context".into()));
    };
    JsFuture::from(promise)
        .await
        .map_err(|e| Error::Io(format!("fetch {url}: {}", js_msg(e))))?
        .dyn_into()
        .map_err(|_| Error::Io("fetch did not return a Response".into()))
}

async fn fetch_range(url: &str, start: u64, end_inclusive: u64) -> Result<web_sys::Response> {
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().map_err(|e| Error::Io(js_msg(e)))?;
    headers.set("Range", &format!("bytes={start}-{end_inclusive}")).map_err(|e| Error::Io(js_msg(e)))?;
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(url, &init).map_err(|e| Error::Io(js_msg(e)))?;
    let resp = fetch(&request, url).await?;
    if resp.status() != 206 {
        return Err(Error::Io(format!(
            "{url}: HTTP {} to a range request (the server must support Range requests)",
            resp.status()
        )));
    }
    Ok(resp)
}

async fn body(resp: web_sys::Response) -> Result<Vec<u8>> {
    let p = resp.array_buffer().map_err(|e| Error::Io(js_msg(e)))?;
    let buf = JsFuture::from(p).await.map_err(|e| Error::Io(js_msg(e)))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

impl HttpSource {
    async fn open(url: String) -> Result<HttpSource> {
        let resp = fetch_range(&url, 0, 0).await?;
        let range = resp.headers().get("Content-Range").ok().flatten().unwrap_or_default();
        let len = range
            .rsplit('/')
            .next()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .ok_or_else(|| Error::Io(format!("{url}: no total length in Content-Range '{range}'")))?;
        Ok(HttpSource { url, len })
    }
}

impl ByteSource for HttpSource {
    fn len(&self) -> u64 {
        self.len
    }
    async fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let bytes = body(fetch_range(&self.url, offset, offset + len as u64 - 1).await?).await?;
        if bytes.len() != len {
            return Err(Error::Io(format!("short read: {} of {len} bytes at {offset}", bytes.len())));
        }
        Ok(bytes)
    }
}

/// One generation request, as the worker sends it (JSON).
#[derive(serde::Deserialize)]
struct Request {
    /// "chat" (messages) or "completion" (prompt)
    kind: String,
    #[serde(default)]
    messages: Vec<Message>,
    #[serde(default)]
    prompt: String,
    #[serde(default)]
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repetition_penalty: Option<f32>,
    seed: Option<u64>,
    #[serde(default)]
    stop: Vec<String>,
}

#[derive(serde::Serialize)]
struct ModelInfo {
    name: String,
    architecture: String,
    n_layer: usize,
    n_embd: usize,
    vocab: usize,
    ctx: usize,
    chat_template: bool,
    weight_bytes: usize,
}

struct State {
    gpu: Arc<Gpu>,
    engine: Option<Engine>,
    image: Option<crate::models::diffusion::pipeline::SdPipeline>,
}

/// The engine as JS sees it (wrapped by `www/aigc.js`).
#[wasm_bindgen]
pub struct WasmEngine {
    state: Rc<RefCell<State>>,
}

#[wasm_bindgen]
impl WasmEngine {
    /// Get the WebGPU adapter and device. Rejects with `WebGpuUnavailableError`.
    /// `max_binding` (bytes, 0 = the adapter's) is a test knob: weights are split as if the
    /// storage-binding limit were that small. `on_lost(message)` is called if the device is lost.
    pub fn create(max_binding: f64, on_lost: Function) -> Promise {
        crate::gpu::set_max_binding_override(max_binding.max(0.0) as u64);
        LOST_CALLBACK.with(|c| *c.borrow_mut() = Some(on_lost));
        // wgpu's callback must be Send; the JS function lives in a thread-local of this (single)
        // wasm thread, and the callback only names it.
        crate::gpu::set_device_lost_hook(|msg| {
            LOST_CALLBACK.with(|c| {
                if let Some(f) = c.borrow().as_ref() {
                    let _ = f.call1(&JsValue::NULL, &JsValue::from_str(msg));
                }
            })
        });
        future_to_promise(async {
            let gpu = Gpu::get().await.map_err(js_error)?;
            Ok(JsValue::from(WasmEngine { state: Rc::new(RefCell::new(State { gpu, engine: None, image: None })) }))
        })
    }

    /// The adapter, limits and features in use, as JSON.
    #[wasm_bindgen(js_name = adapterInfo)]
    pub fn adapter_info(&self) -> String {
        serde_json::to_string(&self.state.borrow().gpu.report).unwrap_or_else(|_| "{}".into())
    }

    /// Load a model from a Blob/File. `progress(done, total)` is called as bytes are uploaded.
    #[wasm_bindgen(js_name = loadBlob)]
    pub fn load_blob(&self, blob: web_sys::Blob, ctx: u32, numerics: String, progress: Function) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { load(state, BlobSource(blob), ctx, &numerics, progress).await.map_err(js_error) })
    }

    /// Load a model from a URL with HTTP range requests.
    #[wasm_bindgen(js_name = loadUrl)]
    pub fn load_url(&self, url: String, ctx: u32, numerics: String, progress: Function) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let src = HttpSource::open(url).await.map_err(js_error)?;
            load(state, src, ctx, &numerics, progress).await.map_err(js_error)
        })
    }

    /// Load a model from bytes already in memory (small files, tests).
    #[wasm_bindgen(js_name = loadBytes)]
    pub fn load_bytes(&self, bytes: Vec<u8>, ctx: u32, numerics: String, progress: Function) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { load(state, SliceSource(bytes), ctx, &numerics, progress).await.map_err(js_error) })
    }

    /// Generate for a JSON request; `on_text(piece)` receives text as it is produced and returns
    /// `false` to stop. Resolves with a JSON summary.
    pub fn generate(&self, request: String, on_text: Function) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { generate(state, request, on_text).await.map_err(js_error) })
    }

    /// Test hook: take the device away as a driver reset would (`DeviceLostError` follows; a
    /// later load brings up a new device).
    #[wasm_bindgen(js_name = simulateDeviceLoss)]
    pub fn simulate_device_loss(&self) {
        self.state.borrow().gpu.simulate_device_loss();
    }

    /// Drop the loaded models, text and image (frees their GPU buffers).
    pub fn unload(&self) {
        let mut st = self.state.borrow_mut();
        st.engine = None;
        st.image = None;
    }

    /// Load a diffusers folder served at `url`, or a single-file checkpoint (`.safetensors` /
    /// `.gguf`) whose tokenizer and configs come from the folder `config_url` (default: the
    /// file's own directory); files are read by HTTP range requests. `quant` is "f32", "q8_0",
    /// "q4_0", or "" for the default (f32; a GGUF's own type). Resolves with a JSON summary.
    #[wasm_bindgen(js_name = loadImageModel)]
    pub fn load_image_model(&self, url: String, quant: String, config_url: Option<String>) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { image::load(state, url, quant, config_url).await.map_err(js_error) })
    }

    /// Load a single-file checkpoint from a Blob/File (drag-and-drop), its tokenizer and
    /// configs from the folder at `config_url`; `quant` as for `loadImageModel`.
    #[wasm_bindgen(js_name = loadImageBlob)]
    pub fn load_image_blob(&self, blob: web_sys::Blob, name: String, quant: String, config_url: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { image::load_blob(state, blob, name, quant, config_url).await.map_err(js_error) })
    }

    /// Load a model folder given as an object of Blobs by relative path (`{"unet/config.json":
    /// File, …}`): a diffusers folder, or one top-level checkpoint beside its tokenizer/configs.
    /// `quant` as for `loadImageModel`.
    #[wasm_bindgen(js_name = loadImageFiles)]
    pub fn load_image_files(&self, files: js_sys::Object, quant: String) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { image::load_files(state, files, quant).await.map_err(js_error) })
    }

    /// Generate pictures for a JSON request (`init`/`mask`: PNG bytes for img2img/inpainting);
    /// `on_step(step, steps)` returns `false` to stop. Resolves with `{summary, pngs}`.
    #[wasm_bindgen(js_name = generateImage)]
    pub fn generate_image(&self, request: String, init: Option<Vec<u8>>, mask: Option<Vec<u8>>, on_step: Function) -> Promise {
        let state = self.state.clone();
        future_to_promise(async move { image::generate(state, request, init, mask, on_step).await.map_err(js_error) })
    }
}

async fn load<S: ByteSource>(state: Rc<RefCell<State>>, src: S, ctx: u32, numerics: &str, progress: Function) -> Result<JsValue> {
    let numerics = Numerics::parse(numerics)?;
    // Free the previous model first: two models may not fit together.
    state.borrow_mut().engine = None;
    let mut report = |done: u64, total: u64| {
        let _ = progress.call2(&JsValue::NULL, &JsValue::from_f64(done as f64), &JsValue::from_f64(total as f64));
    };
    let engine = Engine::load(&src, &LoadOptions { ctx: ctx as usize, numerics }, &mut report).await?;
    // The engine may be on a new device (after a loss): later calls use that one.
    state.borrow_mut().gpu = engine.gpu.clone();
    let cfg = &engine.model.cfg;
    let info = ModelInfo {
        name: engine.gguf.get_str("general.name").ok().flatten().unwrap_or("model").to_string(),
        architecture: cfg.arch.name().to_string(),
        n_layer: cfg.n_layer,
        n_embd: cfg.n_embd,
        vocab: cfg.vocab,
        ctx: engine.model.ctx,
        chat_template: engine.gguf.get_str("tokenizer.chat_template").ok().flatten().is_some(),
        weight_bytes: engine.model.weight_bytes,
    };
    state.borrow_mut().engine = Some(engine);
    Ok(JsValue::from(serde_json::to_string(&info).map_err(|e| Error::Io(e.to_string()))?))
}

async fn generate(state: Rc<RefCell<State>>, request: String, on_text: Function) -> Result<JsValue> {
    let req: Request = serde_json::from_str(&request).map_err(|e| Error::InvalidOption(format!("request: {e}")))?;
    let sampler = SamplerConfig::with(&SamplerOverrides {
        temperature: req.temperature,
        top_k: req.top_k,
        top_p: req.top_p,
        min_p: req.min_p,
        repeat_penalty: req.repetition_penalty,
        seed: req.seed,
    });
    sampler.validate()?;
    let opts = GenOptions { max_tokens: req.max_tokens.unwrap_or(256), sampler, stop: req.stop };
    // Take the engine out while generating so no RefCell borrow is held across awaits.
    let mut engine = state.borrow_mut().engine.take().ok_or_else(|| Error::InvalidOption("no model loaded".into()))?;
    let result = async {
        let prompt = match req.kind.as_str() {
            "chat" => {
                let rendered = engine.render_chat(&req.messages, None)?;
                engine.encode_chat(&rendered)
            }
            "completion" => engine.encode_plain(&req.prompt),
            other => return Err(Error::InvalidOption(format!("request kind '{other}'"))),
        };
        let mut send = |piece: &str| on_text.call1(&JsValue::NULL, &JsValue::from_str(piece)).map(|v| v.as_bool() != Some(false)).unwrap_or(false);
        engine.generate(&prompt, &opts, &mut send).await
    }
    .await;
    state.borrow_mut().engine = Some(engine);
    let out = result?;
    let summary = serde_json::json!({
        "prompt_tokens": out.prompt_tokens.len(),
        "completion_tokens": out.tokens.len(),
        "tokens": out.tokens,
        "text": out.text,
        "finish_reason": out.finish,
        "prefill_tokens_per_s": out.prefill_tokens_per_s(),
        "decode_tokens_per_s": out.decode_tokens_per_s(),
    });
    Ok(JsValue::from(summary.to_string()))
}
