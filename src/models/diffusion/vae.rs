//! AutoencoderKL decoder and encoder (Rombach et al. 2022; diffusers' `Decoder` / `Encoder`): latents [B, 4, h, w] →
//! image [B, 3, 8h, 8w] in [-1, 1].
//!
//! latents / scaling_factor → post_quant_conv (1×1) → conv_in → mid (ResNet, single-head
//! attention, ResNet) → up blocks from the widest (layers_per_block + 1 ResNets, then
//! nearest-×2 + conv except the last) → GroupNorm, SiLU, conv_out. All norms: eps 1e-6.

use burn::tensor::Tensor;

use super::blocks::{Resnet, SpatialSelfAttn, Upsample};
use super::config::VaeConfig;
use super::nn::{part_channels, Conv2d, GroupNorm, Loader, Parts};
use crate::error::Result;
use crate::gpu::Gpu;
use super::store::TensorStore;

const EPS: f64 = 1e-6;

struct UpBlock {
    resnets: Vec<Resnet>,
    up: Option<Upsample>,
}

pub struct VaeDecoder {
    pub cfg: VaeConfig,
    post_quant: Option<Conv2d>,
    conv_in: Conv2d,
    mid_res0: Resnet,
    mid_attn: SpatialSelfAttn,
    mid_res1: Resnet,
    up: Vec<UpBlock>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl VaeDecoder {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, cfg: VaeConfig) -> Result<VaeDecoder> {
        cfg.validate()?;
        let g = cfg.norm_num_groups;
        let lat = cfg.latent_channels;
        let rev: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let n = rev.len();
        let post_quant = match ld.contains("post_quant_conv.weight") {
            true => Some(ld.conv("post_quant_conv", lat, lat, 1, 1).await?),
            false => None,
        };
        let p = "decoder";
        let c = rev[0];
        let conv_in = ld.conv(&format!("{p}.conv_in"), lat, c, 3, 1).await?;
        let mid_res0 = Resnet::load(ld, &format!("{p}.mid_block.resnets.0"), c, c, None, g, EPS).await?;
        let mid_attn = SpatialSelfAttn::load(ld, &format!("{p}.mid_block.attentions.0"), c, g, EPS).await?;
        let mid_res1 = Resnet::load(ld, &format!("{p}.mid_block.resnets.1"), c, c, None, g, EPS).await?;
        let mut up = Vec::with_capacity(n);
        let mut out_ch = rev[0];
        for i in 0..n {
            let prev = out_ch;
            out_ch = rev[i];
            let bp = format!("{p}.up_blocks.{i}");
            let mut resnets = Vec::new();
            for j in 0..=cfg.layers_per_block {
                let c_in = if j == 0 { prev } else { out_ch };
                resnets.push(Resnet::load(ld, &format!("{bp}.resnets.{j}"), c_in, out_ch, None, g, EPS).await?);
            }
            let up_s = match i + 1 < n {
                true => Some(Upsample::load(ld, &format!("{bp}.upsamplers.0"), out_ch).await?),
                false => None,
            };
            up.push(UpBlock { resnets, up: up_s });
        }
        let last = rev[n - 1];
        let norm_out = ld.group_norm(&format!("{p}.conv_norm_out"), g, last, EPS).await?;
        let conv_out = ld.conv(&format!("{p}.conv_out"), last, cfg.out_channels, 3, 1).await?;
        Ok(VaeDecoder { cfg, post_quant, conv_in, mid_res0, mid_attn, mid_res1, up, norm_out, conv_out })
    }

    /// Scaled latents (what the UNet denoises) → image in [-1, 1].
    pub fn forward(&self, gpu: &Gpu, latents: Tensor<4>) -> Result<Tensor<4>> {
        let mut x = latents / self.cfg.scaling_factor;
        if let Some(pq) = &self.post_quant {
            x = pq.forward(gpu, x)?;
        }
        x = self.conv_in.forward(gpu, x)?;
        x = self.mid_res0.forward(gpu, x, None)?;
        x = self.mid_attn.forward(gpu, x)?;
        x = self.mid_res1.forward(gpu, x, None)?;
        // From here on the picture grows ×8 while the channels only halve: run on channel parts
        // that each fit one storage binding (one part when everything fits, as for small sizes).
        let budget = gpu.max_binding;
        let [b, c, h, w] = x.dims();
        let unit = c / self.cfg.norm_num_groups;
        let mut x = Parts::split(x, part_channels(b, c, h, w, unit, budget));
        for blk in &self.up {
            for r in &blk.resnets {
                x = r.forward_parts(gpu, x, budget)?;
            }
            if let Some(u) = &blk.up {
                let unit = x.dims()[1] / self.cfg.norm_num_groups;
                x = u.forward_parts(gpu, x, unit, budget)?;
            }
        }
        let x = x.try_map(|p, c0| self.norm_out.forward_part(gpu, p, c0, true))?;
        Ok(self.conv_out.forward_parts(gpu, &x, 1, budget)?.join())
    }
}

/// One encoder down block: ResNets, then (except the last block) a stride-2 3×3 conv after
/// padding right and bottom by one (diffusers' `Downsample2D(padding=0)`: asymmetric, unlike
/// the UNet's symmetric padding 1).
struct DownBlock {
    resnets: Vec<Resnet>,
    down: Option<Conv2d>,
}

/// AutoencoderKL encoder (for img2img and inpainting): image [B, 3, H, W] in [-1, 1] → the
/// mean of the latent distribution, times `scaling_factor` (what the UNet denoises).
/// diffusers' img2img samples the distribution; we take its mean, so an encode is deterministic.
pub struct VaeEncoder {
    pub cfg: VaeConfig,
    conv_in: Conv2d,
    down: Vec<DownBlock>,
    mid_res0: Resnet,
    mid_attn: SpatialSelfAttn,
    mid_res1: Resnet,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    quant: Option<Conv2d>,
}

impl VaeEncoder {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, cfg: VaeConfig) -> Result<VaeEncoder> {
        cfg.validate()?;
        let (g, lat, boc) = (cfg.norm_num_groups, cfg.latent_channels, cfg.block_out_channels.clone());
        let n = boc.len();
        let p = "encoder";
        let conv_in = ld.conv(&format!("{p}.conv_in"), cfg.in_channels, boc[0], 3, 1).await?;
        let mut down = Vec::with_capacity(n);
        let mut out_ch = boc[0];
        for (i, &c) in boc.iter().enumerate() {
            let prev = out_ch;
            out_ch = c;
            let bp = format!("{p}.down_blocks.{i}");
            let mut resnets = Vec::new();
            for j in 0..cfg.layers_per_block {
                let c_in = if j == 0 { prev } else { out_ch };
                resnets.push(Resnet::load(ld, &format!("{bp}.resnets.{j}"), c_in, out_ch, None, g, EPS).await?);
            }
            let down_s = match i + 1 < n {
                true => {
                    let mut conv = ld.conv(&format!("{bp}.downsamplers.0.conv"), out_ch, out_ch, 3, 2).await?;
                    (conv.pad, conv.pad_end) = (0, 1);
                    Some(conv)
                }
                false => None,
            };
            down.push(DownBlock { resnets, down: down_s });
        }
        let c = boc[n - 1];
        let mid_res0 = Resnet::load(ld, &format!("{p}.mid_block.resnets.0"), c, c, None, g, EPS).await?;
        let mid_attn = SpatialSelfAttn::load(ld, &format!("{p}.mid_block.attentions.0"), c, g, EPS).await?;
        let mid_res1 = Resnet::load(ld, &format!("{p}.mid_block.resnets.1"), c, c, None, g, EPS).await?;
        let norm_out = ld.group_norm(&format!("{p}.conv_norm_out"), g, c, EPS).await?;
        let conv_out = ld.conv(&format!("{p}.conv_out"), c, 2 * lat, 3, 1).await?;
        let quant = match ld.contains("quant_conv.weight") {
            true => Some(ld.conv("quant_conv", 2 * lat, 2 * lat, 1, 1).await?),
            false => None,
        };
        Ok(VaeEncoder { cfg, conv_in, down, mid_res0, mid_attn, mid_res1, norm_out, conv_out, quant })
    }

    /// Image [B, 3, H, W] in [-1, 1] → scaled latents [B, 4, H/8, W/8].
    pub fn forward(&self, gpu: &Gpu, image: Tensor<4>) -> Result<Tensor<4>> {
        let mut x = self.conv_in.forward(gpu, image)?;
        for blk in &self.down {
            for r in &blk.resnets {
                x = r.forward(gpu, x, None)?;
            }
            if let Some(d) = &blk.down {
                x = d.forward(gpu, x)?;
            }
        }
        x = self.mid_res0.forward(gpu, x, None)?;
        x = self.mid_attn.forward(gpu, x)?;
        x = self.mid_res1.forward(gpu, x, None)?;
        let mut m = self.conv_out.forward(gpu, self.norm_out.forward(gpu, x, true)?)?;
        if let Some(q) = &self.quant {
            m = q.forward(gpu, m)?;
        }
        let lat = self.cfg.latent_channels;
        Ok(m.narrow(1, 0, lat) * self.cfg.scaling_factor)
    }
}
