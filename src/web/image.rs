//! The browser binding for image generation: a diffusers folder or a single-file checkpoint
//! (original names; safetensors or GGUF) read over HTTP (each file's
//! header by range, each tensor by range, like the GGUF path) or from Blobs (a dropped file or
//! folder, or files the page took from its model cache), the JSON request the worker sends,
//! per-step progress to a JS callback, and PNGs back as `Uint8Array`s. The pipeline it drives is
//! the same `SdPipeline` the CLI runs.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::{fetch, js_msg, HttpSource, State};
use crate::error::{Error, Result};
use crate::models::diffusion::imageio::{decode_png, encode_png};
use crate::kernels::Precision;
use crate::models::diffusion::nn::WeightQuant;
use crate::models::diffusion::pipeline::{ImageRequest, SdPipeline};
use crate::source::ModelFolder;

/// A diffusers folder served over HTTP: `base` ends with `/`.
pub(super) struct UrlFolder {
    base: String,
}

async fn fetch_text(url: &str) -> Result<Option<String>> {
    let request = web_sys::Request::new_with_str(url).map_err(|e| Error::Io(js_msg(e)))?;
    let resp = fetch(&request, url).await?;
    match resp.status() {
        200 => {}
        404 => return Ok(None),
        s => return Err(Error::Io(format!("{url}: HTTP {s}"))),
    }
    let text = JsFuture::from(resp.text().map_err(|e| Error::Io(js_msg(e)))?).await.map_err(|e| Error::Io(js_msg(e)))?;
    Ok(text.as_string())
}

impl ModelFolder for UrlFolder {
    type Source = HttpSource;
    async fn text(&self, rel: &str) -> Result<Option<String>> {
        fetch_text(&format!("{}{rel}", self.base)).await
    }
    async fn open(&self, rel: &str) -> Result<HttpSource> {
        HttpSource::open(format!("{}{rel}", self.base)).await.map_err(|e| match e {
            Error::Io(m) if m.contains("HTTP 404") => Error::WeightsFormat(format!("the model folder has no {rel}")),
            e => e,
        })
    }
}

/// A folder of Blobs by relative path (`unet/config.json` → its File): a folder dropped on the
/// page or chosen with a directory picker, or a URL folder whose files the page took from its
/// model cache. It may instead hold one single-file checkpoint at its top level beside a
/// tokenizer (and configs): see `load_files`.
pub(super) struct BlobFolder {
    files: Vec<(String, web_sys::Blob)>,
}

impl BlobFolder {
    fn from_object(files: &Object) -> Result<BlobFolder> {
        let mut out = Vec::new();
        for entry in Object::entries(files).iter() {
            let pair = Array::from(&entry);
            let rel = pair.get(0).as_string().unwrap_or_default();
            let blob = pair
                .get(1)
                .dyn_into::<web_sys::Blob>()
                .map_err(|_| Error::InvalidOption(format!("folder file {rel:?} is not a Blob or File")))?;
            out.push((rel.trim_start_matches("./").to_string(), blob));
        }
        if out.is_empty() {
            return Err(Error::InvalidOption("the model folder is empty".into()));
        }
        Ok(BlobFolder { files: out })
    }

    fn get(&self, rel: &str) -> Option<&web_sys::Blob> {
        self.files.iter().find(|(r, _)| r == rel).map(|(_, b)| b)
    }

    /// The one checkpoint file at the folder's top level, when the folder is not diffusers-shaped.
    fn single_checkpoint(&self) -> Option<(&str, &web_sys::Blob)> {
        let mut it = self.files.iter().filter(|(r, _)| {
            let l = r.to_ascii_lowercase();
            !r.contains('/') && (l.ends_with(".safetensors") || l.ends_with(".gguf"))
        });
        let first = it.next()?;
        it.next().is_none().then_some((first.0.as_str(), &first.1))
    }
}

impl ModelFolder for BlobFolder {
    type Source = super::BlobSource;
    async fn text(&self, rel: &str) -> Result<Option<String>> {
        let Some(blob) = self.get(rel) else { return Ok(None) };
        let text = JsFuture::from(blob.text()).await.map_err(|e| Error::Io(format!("{rel}: {}", js_msg(e))))?;
        Ok(Some(text.as_string().unwrap_or_default()))
    }
    async fn open(&self, rel: &str) -> Result<super::BlobSource> {
        self.get(rel)
            .map(|b| super::BlobSource(b.clone()))
            .ok_or_else(|| Error::WeightsFormat(format!("the model folder has no {rel}")))
    }
}

/// One images.generate request, as the worker sends it (JSON; the init image and mask travel
/// separately as PNG bytes).
#[derive(serde::Deserialize)]
struct ImageJson {
    prompt: String,
    #[serde(default)]
    negative_prompt: String,
    #[serde(default = "one")]
    n: usize,
    #[serde(default = "size512")]
    size: String,
    #[serde(default = "twenty")]
    steps: usize,
    #[serde(default = "cfg75")]
    guidance_scale: f32,
    #[serde(default)]
    seed: u64,
    #[serde(default = "euler")]
    scheduler: String,
    #[serde(default = "strength08")]
    strength: f64,
    /// TAESD previews of every candidate at every step (the folder must have `taesd/`).
    #[serde(default)]
    previews: bool,
    /// "f32" (default) or "f16" (needs the adapter's shader-f16).
    #[serde(default)]
    activations: String,
}

fn one() -> usize {
    1
}
fn size512() -> String {
    "512x512".into()
}
fn twenty() -> usize {
    20
}
fn cfg75() -> f32 {
    7.5
}
fn euler() -> String {
    "euler".into()
}
fn strength08() -> f64 {
    0.8
}

/// `dir/` of a URL (query and fragment dropped), and whether the URL names a single-file
/// checkpoint rather than a folder.
fn single_file(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let (dir, name) = path.rsplit_once('/')?;
    let lower = name.to_ascii_lowercase();
    (lower.ends_with(".safetensors") || lower.ends_with(".gguf")).then(|| (format!("{dir}/"), url.to_string()))
}

fn folder(url: String) -> UrlFolder {
    UrlFolder { base: if url.ends_with('/') { url } else { format!("{url}/") } }
}

fn parse_quant(quant: &str) -> Result<Option<WeightQuant>> {
    match quant {
        "" => Ok(None),
        q => Ok(Some(WeightQuant::parse(q)?)),
    }
}

/// Drop the loaded image model and take a fresh device if the last one was lost.
async fn fresh_gpu(state: &Rc<RefCell<State>>) -> Result<std::sync::Arc<crate::gpu::Gpu>> {
    state.borrow_mut().image = None;
    let gpu = crate::gpu::Gpu::get().await?;
    state.borrow_mut().gpu = gpu.clone();
    Ok(gpu)
}

pub(super) async fn load_blob(state: Rc<RefCell<State>>, blob: web_sys::Blob, name: String, quant: String, config: String) -> Result<JsValue> {
    let quant = parse_quant(&quant)?;
    if config.is_empty() {
        return Err(Error::InvalidOption(
            "a single-file checkpoint carries no tokenizer: give the URL of a folder with one (and configs, if needed)".into(),
        ));
    }
    let gpu = fresh_gpu(&state).await?;
    let pipe = SdPipeline::load_single(super::BlobSource(blob), &name, &folder(config), gpu, quant).await?;
    Ok(summary(state, pipe))
}

pub(super) async fn load(state: Rc<RefCell<State>>, url: String, quant: String, config: Option<String>) -> Result<JsValue> {
    let quant = parse_quant(&quant)?;
    let gpu = fresh_gpu(&state).await?;
    let pipe = match single_file(&url) {
        Some((dir, file)) => {
            let aux = folder(config.unwrap_or(dir));
            let src = HttpSource::open(file.clone()).await?;
            SdPipeline::load_single(src, &file, &aux, gpu, quant).await?
        }
        None => SdPipeline::load(&folder(url), gpu, quant.unwrap_or_default()).await?,
    };
    Ok(summary(state, pipe))
}

/// Load a folder given as Blobs (see `BlobFolder`): a diffusers folder when it has
/// `unet/config.json`, else its one top-level checkpoint with the rest as its tokenizer/configs.
pub(super) async fn load_files(state: Rc<RefCell<State>>, files: Object, quant: String) -> Result<JsValue> {
    let quant = parse_quant(&quant)?;
    let folder = BlobFolder::from_object(&files)?;
    let gpu = fresh_gpu(&state).await?;
    let pipe = if folder.get("unet/config.json").is_some() || folder.get("unet/diffusion_pytorch_model.safetensors").is_some() {
        SdPipeline::load(&folder, gpu, quant.unwrap_or_default()).await?
    } else if let Some((name, blob)) = folder.single_checkpoint() {
        SdPipeline::load_single(super::BlobSource(blob.clone()), name, &folder, gpu, quant).await?
    } else {
        return Err(Error::WeightsFormat(
            "the folder is neither a diffusers folder (unet/, vae/, text_encoder/, tokenizer/) nor one .safetensors/.gguf checkpoint with a tokenizer".into(),
        ));
    };
    Ok(summary(state, pipe))
}

/// Keep the pipeline; its JSON summary for the page.
fn summary(state: Rc<RefCell<State>>, pipe: SdPipeline) -> JsValue {
    let quant = pipe.quant;
    let info = serde_json::json!({
        "kind": "image",
        "previews": pipe.taesd.is_some(),
        "gpu_weight_bytes": pipe.gpu_bytes,
        "quant": format!("{quant:?}"),
        "vae_scale": pipe.vae_scale(),
        "img2img": pipe.vae_encoder.is_some(),
        "inpainting_model": pipe.is_inpainting(),
    });
    state.borrow_mut().image = Some(pipe);
    JsValue::from(info.to_string())
}

pub(super) async fn generate(
    state: Rc<RefCell<State>>,
    request: String,
    init: Option<Vec<u8>>,
    mask: Option<Vec<u8>>,
    on_step: Function,
) -> Result<JsValue> {
    let j: ImageJson = serde_json::from_str(&request).map_err(|e| Error::InvalidOption(format!("request: {e}")))?;
    let (w, h) = j
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .ok_or_else(|| Error::InvalidOption(format!("size {:?}: expected \"WxH\"", j.size)))?;
    let mut req = ImageRequest::new(&j.prompt);
    req.negative = j.negative_prompt;
    req.count = j.n;
    req.width = w;
    req.height = h;
    req.steps = j.steps;
    req.guidance = j.guidance_scale;
    req.seed = j.seed;
    req.scheduler = j.scheduler.parse()?;
    req.strength = j.strength;
    req.init = init.as_deref().map(decode_png).transpose()?;
    req.mask = mask.as_deref().map(decode_png).transpose()?;
    req.previews = j.previews;
    req.activations = Precision::parse(&j.activations)?;
    // Take the pipeline out while generating so no RefCell borrow is held across awaits.
    let pipe = state.borrow_mut().image.take().ok_or_else(|| Error::InvalidOption("no image model loaded".into()))?;
    let result = pipe
        .generate(&req, &mut |s| {
            // previews: an array of PNG bytes (empty when not asked for); a preview that fails
            // to encode is left out rather than stopping the run.
            let previews = Array::new();
            for img in &s.previews {
                if let Ok(png) = encode_png(img) {
                    previews.push(&Uint8Array::from(png.as_slice()));
                }
            }
            on_step
                .call3(&JsValue::NULL, &JsValue::from_f64(s.step as f64), &JsValue::from_f64(s.steps as f64), &previews)
                .map(|v| v.as_bool() != Some(false))
                .unwrap_or(false)
        })
        .await;
    state.borrow_mut().image = Some(pipe);
    let out = result?;
    let pngs = Array::new();
    for img in &out.images {
        pngs.push(&Uint8Array::from(encode_png(img)?.as_slice()));
    }
    let summary = serde_json::json!({
        "width": w, "height": h, "seconds_per_step": out.seconds_per_step, "total_seconds": out.total_seconds,
        "seeds": (0..req.count).map(|k| req.seed.wrapping_add(k as u64)).collect::<Vec<_>>(),
    });
    let obj = Object::new();
    let set = |k: &str, v: &JsValue| Reflect::set(&obj, &JsValue::from_str(k), v).map_err(|e| Error::Gpu(js_msg(e)));
    set("summary", &JsValue::from_str(&summary.to_string()))?;
    set("pngs", &pngs)?;
    Ok(obj.into())
}
