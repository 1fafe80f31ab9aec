//! UNet2DConditionModel (Rombach et al. 2022, diffusers' layout): predicts the noise in
//! latents [B, 4, h, w] at timestep t, conditioned on CLIP hidden states [B, 77, D].
//!
//! conv_in → down blocks (ResNets [+ cross-attention transformers], then a stride-2 conv) →
//! mid (ResNet, transformer, ResNet) → up blocks (one more ResNet than down, each eating the
//! matching skip, then nearest-×2 + conv) → GroupNorm, SiLU, conv_out. Channel bookkeeping
//! follows diffusers' `UNet2DConditionModel.__init__` exactly (the up blocks' first ResNet takes
//! the previous block's width plus the skip's).

use crate::kernels::activation::{act, Act};
use crate::kernels::Precision;
use burn::tensor::{DType, Tensor, TensorData};

use super::blocks::{Resnet, Transformer2D, Upsample};
use super::config::{BlockKind, UnetConfig};
use super::nn::{Conv2d, Dense, GroupNorm, Loader};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use super::store::TensorStore;

struct Block {
    resnets: Vec<Resnet>,
    attns: Vec<Transformer2D>,
    down: Option<Conv2d>,
    up: Option<Upsample>,
}

pub struct Unet {
    pub cfg: UnetConfig,
    conv_in: Conv2d,
    time_1: Dense,
    time_2: Dense,
    down: Vec<Block>,
    mid_res0: Resnet,
    mid_attn: Transformer2D,
    mid_res1: Resnet,
    up: Vec<Block>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Unet {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, cfg: UnetConfig) -> Result<Unet> {
        cfg.validate()?;
        let boc = cfg.block_out_channels.clone();
        let n = boc.len();
        let (g, eps, lpb, ctx) = (cfg.norm_num_groups, cfg.norm_eps, cfg.layers_per_block, cfg.cross_attention_dim);
        let temb_dim = 4 * boc[0];
        let (lin, tanh) = (cfg.use_linear_projection, cfg.geglu_tanh);
        let conv_in = ld.conv("conv_in", cfg.in_channels, boc[0], 3, 1).await?;
        let time_1 = ld.linear("time_embedding.linear_1", boc[0], temb_dim, true).await?;
        let time_2 = ld.linear("time_embedding.linear_2", temb_dim, temb_dim, true).await?;

        let mut down = Vec::with_capacity(n);
        let mut out_ch = boc[0];
        for i in 0..n {
            let in_ch = out_ch;
            out_ch = boc[i];
            let p = format!("down_blocks.{i}");
            let mut blk = Block { resnets: vec![], attns: vec![], down: None, up: None };
            for j in 0..lpb {
                let c_in = if j == 0 { in_ch } else { out_ch };
                blk.resnets.push(Resnet::load(ld, &format!("{p}.resnets.{j}"), c_in, out_ch, Some(temb_dim), g, eps).await?);
                if cfg.down_kind(i)? == BlockKind::CrossAttn {
                    let name = format!("{p}.attentions.{j}");
                    blk.attns.push(Transformer2D::load(ld, &name, out_ch, cfg.heads(i)?, ctx, g, lin, tanh).await?);
                }
            }
            if i + 1 < n {
                blk.down = Some(ld.conv(&format!("{p}.downsamplers.0.conv"), out_ch, out_ch, 3, 2).await?);
            }
            down.push(blk);
        }

        let c = boc[n - 1];
        let mid_res0 = Resnet::load(ld, "mid_block.resnets.0", c, c, Some(temb_dim), g, eps).await?;
        let mid_attn = Transformer2D::load(ld, "mid_block.attentions.0", c, cfg.heads(n - 1)?, ctx, g, lin, tanh).await?;
        let mid_res1 = Resnet::load(ld, "mid_block.resnets.1", c, c, Some(temb_dim), g, eps).await?;

        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let mut up = Vec::with_capacity(n);
        let mut out_ch = rev[0];
        for i in 0..n {
            let prev = out_ch;
            out_ch = rev[i];
            let in_ch = rev[(i + 1).min(n - 1)];
            let p = format!("up_blocks.{i}");
            let mut blk = Block { resnets: vec![], attns: vec![], down: None, up: None };
            for j in 0..=lpb {
                let skip = if j == lpb { in_ch } else { out_ch };
                let c_in = if j == 0 { prev } else { out_ch };
                let name = format!("{p}.resnets.{j}");
                blk.resnets.push(Resnet::load(ld, &name, c_in + skip, out_ch, Some(temb_dim), g, eps).await?);
                if cfg.up_kind(i)? == BlockKind::CrossAttn {
                    let (name, heads) = (format!("{p}.attentions.{j}"), cfg.heads(n - 1 - i)?);
                    blk.attns.push(Transformer2D::load(ld, &name, out_ch, heads, ctx, g, lin, tanh).await?);
                }
            }
            if i + 1 < n {
                blk.up = Some(Upsample::load(ld, &format!("{p}.upsamplers.0"), out_ch).await?);
            }
            up.push(blk);
        }
        let norm_out = ld.group_norm("conv_norm_out", g, boc[0], eps).await?;
        let conv_out = ld.conv("conv_out", boc[0], cfg.out_channels, 3, 1).await?;
        Ok(Unet { cfg, conv_in, time_1, time_2, down, mid_res0, mid_attn, mid_res1, up, norm_out, conv_out })
    }

    /// Sinusoidal timestep features [B, C0] (diffusers' `get_timestep_embedding` with
    /// max_period 10000), computed in f64 on the CPU so every platform gets the same bits.
    fn time_features(&self, t: &[f64]) -> Vec<f32> {
        let dim = self.cfg.block_out_channels[0];
        let half = dim / 2;
        let shift = self.cfg.freq_shift;
        let mut out = Vec::with_capacity(t.len() * dim);
        for &ts in t {
            let args: Vec<f64> =
                (0..half).map(|i| ts * libm::exp(-libm::log(10000.0) * i as f64 / (half as f64 - shift))).collect();
            let (sin, cos): (Vec<f32>, Vec<f32>) = args.iter().map(|a| (libm::sin(*a) as f32, libm::cos(*a) as f32)).unzip();
            if self.cfg.flip_sin_to_cos {
                out.extend(cos.iter().chain(&sin));
            } else {
                out.extend(sin.iter().chain(&cos));
            }
            out.resize(out.len() + dim % 2, 0.0);
        }
        out
    }

    /// x [B, 4, h, w], t: one timestep per batch row, ctx [B, 77, D] → noise prediction
    /// [B, 4, h, w] (f32). With `prec` f16 every activation in between is stored as f16 (the
    /// timestep features and embedding MLP stay f32 and are narrowed after).
    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>, t: &[f64], ctx: &Tensor<3>, prec: Precision) -> Result<Tensor<4>> {
        let [b, _, h, w] = x.dims();
        let levels = self.cfg.block_out_channels.len() - 1;
        if t.len() != b || h % (1 << levels) != 0 || w % (1 << levels) != 0 {
            return Err(Error::InvalidOption(format!(
                "UNet input {b}×{h}×{w} with {} timesteps: sizes must be multiples of {}",
                t.len(),
                1 << levels
            )));
        }
        if prec.is_f16() && !gpu.report.shader_f16 {
            return Err(Error::InvalidOption("f16 activations need the adapter's shader-f16 feature".into()));
        }
        let c0 = self.cfg.block_out_channels[0];
        let tf = Tensor::<3>::from_data(TensorData::new(self.time_features(t), [1, b, c0]), &gpu.device);
        let temb = self.time_2.forward(gpu, act(gpu, self.time_1.forward(gpu, tf)?, Act::Silu)?)?;
        let td = temb.dims()[2];
        // Every ResNet applies silu to the embedding first: do it once.
        let temb = act(gpu, temb.reshape([b, td]), Act::Silu)?;
        let dt = prec.dtype();
        let (temb, ctx) = (temb.cast(dt), &ctx.clone().cast(dt));

        let mut x = self.conv_in.forward(gpu, x.cast(dt))?;
        let mut skips = vec![x.clone()];
        for blk in &self.down {
            for (j, r) in blk.resnets.iter().enumerate() {
                x = r.forward(gpu, x, Some(&temb))?;
                if let Some(a) = blk.attns.get(j) {
                    x = a.forward(gpu, x, ctx)?;
                }
                skips.push(x.clone());
            }
            if let Some(d) = &blk.down {
                x = d.forward(gpu, x)?;
                skips.push(x.clone());
            }
        }
        x = self.mid_res0.forward(gpu, x, Some(&temb))?;
        x = self.mid_attn.forward(gpu, x, ctx)?;
        x = self.mid_res1.forward(gpu, x, Some(&temb))?;
        for blk in &self.up {
            for (j, r) in blk.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| Error::ModelConfig("UNet skip connections out of step".into()))?;
                x = r.forward(gpu, Tensor::cat(vec![x, skip], 1), Some(&temb))?;
                if let Some(a) = blk.attns.get(j) {
                    x = a.forward(gpu, x, ctx)?;
                }
            }
            if let Some(u) = &blk.up {
                x = u.forward(gpu, x)?;
            }
        }
        Ok(self.conv_out.forward(gpu, self.norm_out.forward(gpu, x, true)?)?.cast(DType::F32))
    }
}
