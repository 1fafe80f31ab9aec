//! Text → image (Stable Diffusion's txt2img, img2img and inpainting), on the components of
//! this module's siblings: CLIP tokenizer → text encoder → seeded latents (or the VAE-encoded
//! init image, noised to the `strength` level) → scheduler loop (UNet with classifier-free
//! guidance; inpainting re-imposes the noised init latents outside the mask after every step,
//! diffusers' recipe for ordinary 4-channel UNets) → VAE decode → RGB.
//!
//! Owns [`SdPipeline`] (the loaded diffusers folder), [`ImageRequest`] (what one call asks
//! for) and [`Generated`]. The latent state lives on the CPU between steps (4·h·w floats per
//! candidate: 64 KiB at 512²) so the schedulers are plain, bit-reproducible f32 code; each UNet
//! evaluation is uploaded, run and read back, which also ends a GPU submission per step (a
//! browser resets a GPU whose submission runs for seconds).
//!
//! Batching: `count` candidates run as one UNet batch of `count` (or `2·count` with guidance:
//! rows `[uncond × count, cond × count]`, diffusers' order). Candidate `k` draws its noise from
//! its own stream seeded `seed + k` ([`BatchNoise`]), so its picture does not depend on `count`.

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};
use web_time::Instant;

use super::clip::ClipText;
use super::imageio::{from_rgb8, to_rgb8, Rgb8};
use super::nn::{read_tensor, WeightQuant};
use super::taesd::Taesd;
use super::noise::{BatchNoise, NoiseSource};
use super::scheduler::{new_scheduler, SchedulerConfig, SchedulerKind};
use super::unet::Unet;
use super::vae::{VaeDecoder, VaeEncoder};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::Precision;
use crate::tokenizer::ClipTokenizer;

/// One txt2img call.
#[derive(Clone, Debug)]
pub struct ImageRequest {
    pub prompt: String,
    /// The unconditional text of classifier-free guidance ("" when none is given).
    pub negative: String,
    pub steps: usize,
    /// Guidance scale; ≤ 1 turns guidance off (one UNet row per candidate), as diffusers.
    pub guidance: f32,
    pub seed: u64,
    pub width: usize,
    pub height: usize,
    pub scheduler: SchedulerKind,
    /// Candidates, seeds `seed, seed+1, …`.
    pub count: usize,
    /// Initial noise `[count, 4, h, w]` (unscaled N(0,1), as diffusers' `latents=`) instead of
    /// drawing it from the seed; the per-step noise still comes from the seed.
    pub latents: Option<Vec<f32>>,
    /// img2img / inpainting: the picture to start from (the request's size).
    pub init: Option<Rgb8>,
    /// How much of the schedule to run from the init image (1 = all of it).
    pub strength: f64,
    /// Inpainting: where to repaint (pixels whose red value is ≥ 128), the request's size.
    pub mask: Option<Rgb8>,
    /// Decode a preview of every candidate at every step (needs a TAESD decoder loaded).
    pub previews: bool,
    /// How the UNet stores its activations (f16 needs the adapter's `shader-f16`).
    pub activations: Precision,
}

impl ImageRequest {
    /// SD 1.x defaults: 512², 20 Euler steps, guidance 7.5, one candidate.
    pub fn new(prompt: &str) -> ImageRequest {
        ImageRequest {
            prompt: prompt.to_string(),
            negative: String::new(),
            steps: 20,
            guidance: 7.5,
            seed: 0,
            width: 512,
            height: 512,
            scheduler: SchedulerKind::Euler,
            count: 1,
            latents: None,
            init: None,
            strength: 0.8,
            mask: None,
            previews: false,
            activations: Precision::F32,
        }
    }
}

/// What a call produced.
pub struct Generated {
    /// One picture per candidate, in seed order.
    pub images: Vec<Rgb8>,
    /// The final latents `[count, 4, h, w]` (what the VAE decoded).
    pub latents: Vec<f32>,
    pub seconds_per_step: f64,
    pub total_seconds: f64,
}

/// Progress of one denoising step.
#[derive(Clone, Debug)]
pub struct StepInfo {
    /// 1-based step just finished.
    pub step: usize,
    pub steps: usize,
    pub seconds: f64,
    /// With `ImageRequest::previews`: each candidate's denoised estimate (x₀) at this step
    /// through TAESD, 8× the latent size.
    pub previews: Vec<Rgb8>,
}

/// A loaded diffusers folder.
pub struct SdPipeline {
    pub(super) gpu: Arc<Gpu>,
    pub tokenizer: ClipTokenizer,
    pub text_encoder: ClipText,
    pub unet: Unet,
    pub vae: VaeDecoder,
    /// Absent when the checkpoint ships only the decoder (then img2img is refused).
    pub vae_encoder: Option<VaeEncoder>,
    pub scheduler: SchedulerConfig,
    /// Bytes of weights on the GPU (after quantization).
    pub gpu_bytes: u64,
    pub quant: WeightQuant,
    /// The TAESD decoder for previews, if one was loaded.
    pub taesd: Option<Taesd>,
}

impl SdPipeline {
    /// Pixels per latent cell (8 for SD's VAE: 2^(blocks − 1)).
    pub fn vae_scale(&self) -> usize {
        1 << (self.vae.cfg.block_out_channels.len() - 1)
    }

    /// The latent shape `[4, h, w]` of one candidate at `width × height`, checked against what
    /// the UNet can take (its down-sampling levels must divide the latent size).
    pub fn latent_shape(&self, width: usize, height: usize) -> Result<[usize; 3]> {
        let s = self.vae_scale();
        let levels = 1 << (self.unet.cfg.block_out_channels.len() - 1);
        let unit = s * levels;
        if width == 0 || height == 0 || width % unit != 0 || height % unit != 0 || width > 4096 || height > 4096 {
            return Err(Error::InvalidOption(format!(
                "size {width}x{height}: width and height must be multiples of {unit} (at most 4096) for this model"
            )));
        }
        Ok([self.vae.cfg.latent_channels, height / s, width / s])
    }

    /// CLIP hidden states `[rows, 77, D]` of some texts, padded per the tokenizer's rules.
    pub fn encode_text(&self, texts: &[&str]) -> Result<Tensor<3>> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenizer.encode_padded(t)).collect();
        self.text_encoder.forward(&self.gpu, &ids)
    }

    /// txt2img. `on_step` hears about every finished step; returning `false` cancels
    /// (`Error::Cancelled`).
    pub async fn generate(&self, req: &ImageRequest, on_step: &mut dyn FnMut(StepInfo) -> bool) -> Result<Generated> {
        let t0 = Instant::now();
        if req.count == 0 || req.count > 16 {
            return Err(Error::InvalidOption(format!("count must be 1 to 16, got {}", req.count)));
        }
        if !req.guidance.is_finite() {
            return Err(Error::InvalidOption(format!("guidance scale {} is not finite", req.guidance)));
        }
        if req.activations.is_f16() && !self.gpu.report.shader_f16 {
            let name = match self.gpu.report.name.as_str() {
                "" => "this adapter".to_string(),
                n => format!("this adapter ({n})"),
            };
            return Err(Error::InvalidOption(format!("f16 activations need the shader-f16 feature, which {name} does not have")));
        }
        let [c, h, w] = self.latent_shape(req.width, req.height)?;
        let n = req.count;
        let per = c * h * w;
        let strength = if req.init.is_some() { req.strength } else { 1.0 };
        let mut sched = new_scheduler(req.scheduler, &self.scheduler, req.steps, strength)?;
        let start = sched.start_index();
        let mut noise = BatchNoise::new(req.seed, n);
        // Drawn even when latents are given, so the step noise is the same either way.
        let drawn = noise.randn(n * per);
        let init_noise = match &req.latents {
            Some(l) if l.len() == n * per => l.clone(),
            Some(l) => {
                return Err(Error::InvalidOption(format!(
                    "initial latents have {} values, [{n}, {c}, {h}, {w}] needs {}",
                    l.len(),
                    n * per
                )))
            }
            None => drawn,
        };
        // diffusers' inpainting starts from pure noise at full strength; img2img always from
        // the noised picture.
        let from_noise = req.init.is_none() || (req.mask.is_some() && strength >= 1.0);
        // img2img: the encoded picture (one per candidate), noised to the first step's level;
        // 4-channel inpainting also puts it back outside the mask. An inpainting UNet starting
        // from noise never needs it (its condition is encoded below).
        let image_latents = match &req.init {
            Some(img) if !(self.is_inpainting() && from_noise) => {
                Some(self.encode_image(img, req.width, req.height).await?.repeat(n))
            }
            _ => None,
        };
        let mask = match (&req.mask, &req.init) {
            (Some(m), Some(_)) => Some(latent_mask(m, req.width, req.height, h, w, c, n)?),
            (Some(_), None) => return Err(Error::InvalidOption("a mask needs an init image".into())),
            (None, _) => None,
        };
        // An inpainting UNet (9 input channels) takes, after the latents, the mask and the
        // latents of the picture with the masked part blanked, the same for every row.
        let cond = match self.is_inpainting() {
            true => Some(self.inpaint_condition(req, h, w).await?),
            false => None,
        };
        let mut x: Vec<f32> = match &image_latents {
            Some(il) if !from_noise => sched.add_noise(il, &init_noise, start)?,
            _ => {
                let sigma0 = sched.init_noise_sigma();
                init_noise.iter().map(|v| v * sigma0).collect()
            }
        };

        let guided = req.guidance > 1.0;
        let ctx = if guided {
            let e = self.encode_text(&[&req.negative, &req.prompt])?;
            let [_, s, d] = e.dims();
            let (u, p) = (e.clone().narrow(0, 0, 1), e.narrow(0, 1, 1));
            let mut rows = vec![u; n];
            rows.extend(vec![p; n]);
            Tensor::cat(rows, 0).reshape([2 * n, s, d])
        } else {
            let e = self.encode_text(&[&req.prompt])?;
            let [_, s, d] = e.dims();
            Tensor::cat(vec![e; n], 0).reshape([n, s, d])
        };
        let rows = if guided { 2 * n } else { n };

        let timesteps = sched.timesteps().to_vec();
        let t_loop = Instant::now();
        for i in start..timesteps.len() {
            let mut input = x.clone();
            sched.scale_model_input(&mut input, i)?;
            if guided {
                input.extend_from_within(..);
            }
            let c_in = self.unet.cfg.in_channels;
            if let Some(cond) = &cond {
                input = input.chunks(per).flat_map(|row| row.iter().chain(cond)).copied().collect();
            }
            let xt = Tensor::<4>::from_data(TensorData::new(input, [rows, c_in, h, w]), &self.gpu.device);
            let eps = self.unet.forward(&self.gpu, xt, &vec![timesteps[i]; rows], &ctx, req.activations)?;
            let eps = read_tensor(&self.gpu, eps).await?;
            let eps = if guided {
                let (u, t) = eps.split_at(n * per);
                u.iter().zip(t).map(|(&u, &t)| u + req.guidance * (t - u)).collect()
            } else {
                eps
            };
            let previews = match (&self.taesd, req.previews) {
                (Some(t), true) => self.preview(t, &sched.predicted_original(&eps, i, &x)?, n, h, w).await?,
                _ => Vec::new(),
            };
            x = sched.step(&eps, i, &x, &mut noise)?;
            if let (Some(m), Some(il), None) = (&mask, &image_latents, &cond) {
                // Keep the init picture outside the mask, at the noise level of the next step.
                let proper = match i + 1 < timesteps.len() {
                    true => sched.add_noise(il, &init_noise, i + 1)?,
                    false => il.clone(),
                };
                for ((x, &m), p) in x.iter_mut().zip(m).zip(proper) {
                    *x = (1.0 - m) * p + m * *x;
                }
            }
            let info = StepInfo { step: i - start + 1, steps: timesteps.len() - start, seconds: t_loop.elapsed().as_secs_f64(), previews };
            if !on_step(info) {
                return Err(Error::Cancelled);
            }
        }
        let steps_run = (timesteps.len() - start).max(1);
        let seconds_per_step = t_loop.elapsed().as_secs_f64() / steps_run as f64;

        let mut images = Vec::with_capacity(n);
        for k in 0..n {
            images.push(self.decode(&x[k * per..(k + 1) * per], h, w).await?);
        }
        Ok(Generated { images, latents: x, seconds_per_step, total_seconds: t0.elapsed().as_secs_f64() })
    }

    /// VAE-encode a picture of the request's size to scaled latents `[4, h, w]`.
    pub async fn encode_image(&self, img: &Rgb8, width: usize, height: usize) -> Result<Vec<f32>> {
        if (img.width, img.height) != (width, height) {
            return Err(Error::InvalidOption(format!(
                "init image is {}x{}, the request is {width}x{height}",
                img.width, img.height
            )));
        }
        self.encode_pixels(from_rgb8(img), width, height).await
    }

    /// VAE-encode pixels `[3, height, width]` in [-1, 1] to scaled latents (the distribution's
    /// mean, where diffusers samples it: the same picture always gives the same latents).
    pub async fn encode_pixels(&self, pixels: Vec<f32>, width: usize, height: usize) -> Result<Vec<f32>> {
        let enc = self
            .vae_encoder
            .as_ref()
            .ok_or_else(|| Error::UnsupportedModel("this checkpoint's VAE has no encoder: img2img needs one".into()))?;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, 3, height, width]), &self.gpu.device);
        read_tensor(&self.gpu, enc.forward(&self.gpu, x)?).await
    }

    /// A UNet that takes latents + mask + masked-picture latents (SD inpainting checkpoints).
    pub fn is_inpainting(&self) -> bool {
        self.unet.cfg.in_channels == 2 * self.vae.cfg.latent_channels + 1
    }

    /// The inpainting UNet's extra input channels `[1 + 4, h, w]`: the binarized mask at latent
    /// size, then the latents of the init picture with the masked pixels set to 0 (mid-grey),
    /// as diffusers' StableDiffusionInpaintPipeline prepares them.
    async fn inpaint_condition(&self, req: &ImageRequest, h: usize, w: usize) -> Result<Vec<f32>> {
        let (Some(init), Some(mask)) = (&req.init, &req.mask) else {
            return Err(Error::InvalidOption("this is an inpainting model: it needs an init image and a mask".into()));
        };
        if (init.width, init.height) != (req.width, req.height) {
            return Err(Error::InvalidOption(format!(
                "init image is {}x{}, the request is {}x{}",
                init.width, init.height, req.width, req.height
            )));
        }
        let mut cond = latent_mask(mask, req.width, req.height, h, w, 1, 1)?;
        let mut pixels = from_rgb8(init);
        let plane = req.width * req.height;
        for (k, v) in pixels.iter_mut().enumerate() {
            if mask.data[3 * (k % plane)] >= 128 {
                *v = 0.0;
            }
        }
        cond.extend(self.encode_pixels(pixels, req.width, req.height).await?);
        Ok(cond)
    }

    /// TAESD pictures of `n` candidates' latents [n, c, h, w] (values in [0, 1] → 8-bit RGB).
    async fn preview(&self, taesd: &Taesd, latents: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<Rgb8>> {
        let c = taesd.latent_channels;
        let x = Tensor::<4>::from_data(TensorData::new(latents.to_vec(), [n, c, h, w]), &self.gpu.device);
        let img = read_tensor(&self.gpu, taesd.forward(&self.gpu, x)?).await?;
        let per = 3 * 64 * h * w;
        // to_rgb8 maps [-1, 1]; TAESD gives [0, 1].
        img.chunks(per).map(|p| to_rgb8(&p.iter().map(|v| 2.0 * v - 1.0).collect::<Vec<_>>(), 8 * w, 8 * h)).collect()
    }

    /// VAE-decode one candidate's latents `[4, h, w]` to pixels.
    pub async fn decode(&self, latents: &[f32], h: usize, w: usize) -> Result<Rgb8> {
        let c = self.vae.cfg.latent_channels;
        let x = Tensor::<4>::from_data(TensorData::new(latents.to_vec(), [1, c, h, w]), &self.gpu.device);
        let img = read_tensor(&self.gpu, self.vae.forward(&self.gpu, x)?).await?;
        let s = self.vae_scale();
        to_rgb8(&img, w * s, h * s)
    }
}

/// The inpainting mask at latent resolution, 1 where to repaint, repeated over the `c` channels
/// and `n` candidates: diffusers' binarize (≥ 0.5) then nearest-neighbour downsampling, which
/// takes pixel (8i, 8j) for latent cell (i, j).
fn latent_mask(m: &Rgb8, width: usize, height: usize, h: usize, w: usize, c: usize, n: usize) -> Result<Vec<f32>> {
    if (m.width, m.height) != (width, height) {
        return Err(Error::InvalidOption(format!("mask is {}x{}, the request is {width}x{height}", m.width, m.height)));
    }
    let (sy, sx) = (height / h, width / w);
    let mut one = Vec::with_capacity(h * w);
    for i in 0..h {
        for j in 0..w {
            let red = m.data[3 * ((i * sy) * width + j * sx)];
            one.push(if red >= 128 { 1.0 } else { 0.0 });
        }
    }
    Ok(one.repeat(c * n))
}
