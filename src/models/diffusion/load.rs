//! Loading an [`SdPipeline`]: from a diffusers folder (`unet/`, `vae/`, `text_encoder/`,
//! `tokenizer/`, `scheduler/`, each with its `config.json`), or from a single-file checkpoint
//! (original names; safetensors, or stable-diffusion.cpp's GGUF with its per-tensor ggml types)
//! whose hyper-parameters are read from its shapes unless a diffusers folder's configs are given.
//! Both end in one [`SdPipeline::assemble`] over three [`TensorStore`]s.
//!
//! A single file carries no tokenizer, so one comes from the auxiliary folder (`tokenizer/`
//! with `vocab.json` + `merges.txt`, the CLIP BPE every SD 1.x / 2.x model shares); its
//! configs, `scheduler/` and `taesd/` are used when present.

use std::sync::Arc;

use super::checkpoint::{infer_clip, infer_unet, infer_vae, tables, Family};
use super::clip::ClipText;
use super::config::{parse, ClipConfig, UnetConfig, VaeConfig};
use super::nn::{Loader, WeightQuant};
use super::pipeline::SdPipeline;
use super::scheduler::SchedulerConfig;
use super::store::{majority_quant, GgufStore, Renamed, TensorStore};
use super::taesd::Taesd;
use super::unet::Unet;
use super::vae::{VaeDecoder, VaeEncoder};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::safetensors::SafetensorsFile;
use crate::source::{ByteSource, ModelFolder};
use crate::tokenizer::ClipTokenizer;

async fn need<F: ModelFolder>(folder: &F, rel: &str) -> Result<String> {
    folder.text(rel).await?.ok_or_else(|| Error::WeightsFormat(format!("the model folder has no {rel}")))
}

async fn weights<F: ModelFolder>(folder: &F, rel: &str) -> Result<SafetensorsFile<F::Source>> {
    SafetensorsFile::open(folder.open(rel).await?, rel).await
}


/// `tokenizer/` of a folder, or (for a folder that is just a tokenizer) its root; without a
/// tokenizer config, `default_cfg` (a JSON text) is used.
async fn tokenizer<F: ModelFolder>(folder: &F, default_cfg: Option<&str>) -> Result<ClipTokenizer> {
    let (vocab, dir) = match folder.text("tokenizer/vocab.json").await? {
        Some(v) => (v, "tokenizer/"),
        None => match folder.text("vocab.json").await? {
            Some(v) => (v, ""),
            None => return Err(Error::WeightsFormat("the model folder has no tokenizer/vocab.json".into())),
        },
    };
    let tok_cfg = match folder.text(&format!("{dir}tokenizer_config.json")).await? {
        Some(t) => Some(t),
        None => folder.text(&format!("{dir}special_tokens_map.json")).await?,
    };
    Ok(ClipTokenizer::from_files(
        &vocab,
        &need(folder, &format!("{dir}merges.txt")).await?,
        tok_cfg.as_deref().or(default_cfg),
    )?)
}

async fn scheduler<F: ModelFolder>(folder: &F) -> Result<SchedulerConfig> {
    match folder.text("scheduler/scheduler_config.json").await? {
        Some(t) => Ok(SchedulerConfig::from_json(&t)?),
        None => Ok(SchedulerConfig::default()),
    }
}

/// A component's config from the folder when it has one, else what `infer` reads from shapes.
async fn config_or<F: ModelFolder, C: for<'de> serde::Deserialize<'de>>(
    folder: &F,
    rel: &str,
    infer: impl FnOnce() -> Result<C>,
) -> Result<C> {
    match folder.text(rel).await? {
        Some(t) => parse(&t, rel),
        None => infer(),
    }
}

/// What [`SdPipeline::assemble`] builds from: the tokenizer, the scheduler's config, and each
/// component's config with the store its (diffusers-named) tensors come from.
pub struct Parts<'a, A: TensorStore, B: TensorStore, C: TensorStore> {
    pub tokenizer: ClipTokenizer,
    pub scheduler: SchedulerConfig,
    pub clip: (ClipConfig, &'a A),
    pub unet: (UnetConfig, &'a B),
    pub vae: (VaeConfig, &'a C),
}

impl SdPipeline {
    /// Load a single-file checkpoint (`file`: safetensors or GGUF, told apart by the GGUF magic)
    /// with `aux` supplying the tokenizer and, where it has them, configs, scheduler and TAESD.
    /// `quant: None` keeps what the file has: a GGUF's own Q8_0 / Q4_0 ([`majority_quant`]),
    /// else f32.
    pub async fn load_single<S: ByteSource, F: ModelFolder>(
        file: S,
        label: &str,
        aux: &F,
        gpu: Arc<Gpu>,
        quant: Option<WeightQuant>,
    ) -> Result<SdPipeline> {
        let magic = file.read(0, file.len().min(4) as usize).await?;
        if magic == b"GGUF" {
            let st = GgufStore::open(file, label).await?;
            let quant = quant.unwrap_or_else(|| majority_quant(st.header()));
            Self::from_single(&st, aux, gpu, quant).await
        } else {
            let st = SafetensorsFile::open(file, label).await?;
            Self::from_single(&st, aux, gpu, quant.unwrap_or_default()).await
        }
    }

    async fn from_single<T: TensorStore, F: ModelFolder>(st: &T, aux: &F, gpu: Arc<Gpu>, quant: WeightQuant) -> Result<SdPipeline> {
        let t = tables(st)?;
        let family = t.family;
        let (te, un, va) = (Renamed::new(st, t.clip, "text encoder"), Renamed::new(st, t.unet, "UNet"), Renamed::new(st, t.vae, "VAE"));
        // SD 2.x pads with "!" (id 0), SD 1.x with <|endoftext|> (the tokenizer's default).
        let pad = (family == Family::V2).then_some(r#"{"pad_token": "!"}"#);
        let tokenizer = tokenizer(aux, pad).await.map_err(|e| match e {
            Error::WeightsFormat(m) => Error::WeightsFormat(format!(
                "a single-file checkpoint carries no tokenizer, and the folder given for it (--config) has none: {m}"
            )),
            e => e,
        })?;
        let parts = Parts {
            tokenizer,
            scheduler: scheduler(aux).await?,
            clip: (config_or(aux, "text_encoder/config.json", || infer_clip(&te, family)).await?, &te),
            unet: (config_or(aux, "unet/config.json", || infer_unet(&un, family)).await?, &un),
            vae: (config_or(aux, "vae/config.json", || infer_vae(&va)).await?, &va),
        };
        let mut pipe = SdPipeline::assemble(gpu, quant, parts).await?;
        if aux.text("taesd/config.json").await?.is_some() {
            pipe.load_taesd_weights(aux, "taesd/diffusion_pytorch_model.safetensors").await?;
        }
        Ok(pipe)
    }

    /// The components on the GPU; the UNet's and text encoder's weights kept as `quant`.
    pub async fn assemble<A: TensorStore, B: TensorStore, C: TensorStore>(
        gpu: Arc<Gpu>,
        quant: WeightQuant,
        p: Parts<'_, A, B, C>,
    ) -> Result<SdPipeline> {
        let Parts { tokenizer, scheduler, clip: (clip_cfg, te), unet: (unet_cfg, un), vae: (vae_cfg, va) } = p;
        let mut gpu_bytes = 0;
        if clip_cfg.vocab_size != tokenizer.vocab_size() {
            return Err(Error::ModelConfig(format!(
                "tokenizer has {} tokens, text encoder {}",
                tokenizer.vocab_size(),
                clip_cfg.vocab_size
            )));
        }
        let ld = Loader::new(te, &gpu, quant);
        let text_encoder = ClipText::load(&ld, clip_cfg).await?;
        gpu_bytes += ld.gpu_bytes.get();

        let ld = Loader::new(un, &gpu, quant);
        let unet = Unet::load(&ld, unet_cfg).await?;
        gpu_bytes += ld.gpu_bytes.get();

        // The VAE stays f32: it is a small part of the weights and the most visible in the pixels.
        let ld = Loader::new(va, &gpu, WeightQuant::F32);
        let vae = VaeDecoder::load(&ld, vae_cfg.clone()).await?;
        let vae_encoder = match ld.contains("encoder.conv_in.weight") {
            true => Some(VaeEncoder::load(&ld, vae_cfg).await?),
            false => None,
        };
        gpu_bytes += ld.gpu_bytes.get();
        let lat = vae.cfg.latent_channels;
        if unet.cfg.in_channels != lat && unet.cfg.in_channels != 2 * lat + 1 {
            return Err(Error::UnsupportedModel(format!(
                "a UNet taking {} channels: {lat} (text-to-image) and {} (inpainting) are supported",
                unet.cfg.in_channels,
                2 * lat + 1
            )));
        }
        if unet.cfg.out_channels != lat {
            return Err(Error::ModelConfig(format!(
                "UNet makes {} latent channels, the VAE takes {}",
                unet.cfg.out_channels, vae.cfg.latent_channels
            )));
        }
        Ok(SdPipeline { gpu, tokenizer, text_encoder, unet, vae, vae_encoder, scheduler, gpu_bytes, quant, taesd: None })
    }

    /// Load a diffusers folder; the UNet's and text encoder's linear layers are kept as `quant`.
    pub async fn load<F: ModelFolder>(folder: &F, gpu: Arc<Gpu>, quant: WeightQuant) -> Result<SdPipeline> {
        let tokenizer = tokenizer(folder, None).await?;
        let scheduler = scheduler(folder).await?;
        let clip_cfg: ClipConfig = parse(&need(folder, "text_encoder/config.json").await?, "text_encoder/config.json")?;
        let unet_cfg: UnetConfig = parse(&need(folder, "unet/config.json").await?, "unet/config.json")?;
        let vae_cfg: VaeConfig = parse(&need(folder, "vae/config.json").await?, "vae/config.json")?;
        let te = weights(folder, "text_encoder/model.safetensors").await?;
        let un = weights(folder, "unet/diffusion_pytorch_model.safetensors").await?;
        let va = weights(folder, "vae/diffusion_pytorch_model.safetensors").await?;
        let parts = Parts { tokenizer, scheduler, clip: (clip_cfg, &te), unet: (unet_cfg, &un), vae: (vae_cfg, &va) };
        let mut pipe = SdPipeline::assemble(gpu, quant, parts).await?;
        // A `taesd/` folder beside the others gives per-step previews.
        if folder.text("taesd/config.json").await?.is_some() {
            pipe.load_taesd_weights(folder, "taesd/diffusion_pytorch_model.safetensors").await?;
        }
        Ok(pipe)
    }

    /// Load a TAESD decoder for per-step previews from `folder` (a diffusers AutoencoderTiny:
    /// `{dir}diffusion_pytorch_model.safetensors`, or a `taesd_decoder.safetensors`).
    pub async fn load_taesd<F: ModelFolder>(&mut self, folder: &F, dir: &str) -> Result<()> {
        let rel = match folder.text(&format!("{dir}config.json")).await? {
            Some(_) => format!("{dir}diffusion_pytorch_model.safetensors"),
            None => format!("{dir}taesd_decoder.safetensors"),
        };
        self.load_taesd_weights(folder, &rel).await
    }

    async fn load_taesd_weights<F: ModelFolder>(&mut self, folder: &F, rel: &str) -> Result<()> {
        let file = weights(folder, rel).await?;
        let ld = Loader::new(&file, &self.gpu, WeightQuant::F32);
        let taesd = Taesd::load(&ld).await?;
        if taesd.latent_channels != self.unet.cfg.out_channels {
            return Err(Error::ModelConfig(format!(
                "TAESD takes {} latent channels, the UNet makes {}",
                taesd.latent_channels, self.unet.cfg.out_channels
            )));
        }
        // A decoder given explicitly replaces the folder's own (freed with it).
        let old = self.taesd.as_ref().map_or(0, |t| t.gpu_bytes);
        self.gpu_bytes = self.gpu_bytes - old + taesd.gpu_bytes;
        self.taesd = Some(taesd);
        Ok(())
    }
}
