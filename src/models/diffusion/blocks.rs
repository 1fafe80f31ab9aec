//! The building blocks UNet and VAE share (diffusers' `ResnetBlock2D`, `Transformer2DModel`
//! with `BasicTransformerBlock`, the VAE's single-head `Attention`, up/down samplers).
//!
//! ResnetBlock2D: h = conv1(silu(norm1(x))) (+ time_emb_proj(silu(temb)) per channel);
//! h = conv2(silu(norm2(h))); out = shortcut(x) + h, shortcut a 1×1 conv when channels change.
//! Transformer2D: GroupNorm(eps 1e-6) → proj_in (1×1 conv or linear; the same map on
//! [B, H·W, C]) → blocks (self-attn, cross-attn on the text, GEGLU feed-forward; pre-LN with
//! residuals) → proj_out → + input. GEGLU's GELU is erf-based, as diffusers' `F.gelu`.

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::Tensor;

use super::nn::{attention, merge_heads, split_heads, Conv2d, Dense, GroupNorm, LayerNorm, Loader, Parts};
use super::nn::part_channels;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::activation::{act, Act};
use super::store::TensorStore;

pub struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    temb: Option<Dense>,
    norm2: GroupNorm,
    conv2: Conv2d,
    shortcut: Option<Conv2d>,
}

impl Resnet {
    /// `temb_dim` is None for the VAE's resnets (no time embedding).
    pub async fn load<T: TensorStore>(
        ld: &Loader<'_, T>,
        p: &str,
        c_in: usize,
        c_out: usize,
        temb_dim: Option<usize>,
        groups: usize,
        eps: f64,
    ) -> Result<Resnet> {
        let temb = match temb_dim {
            Some(t) => Some(ld.linear(&format!("{p}.time_emb_proj"), t, c_out, true).await?),
            None => None,
        };
        let shortcut = match c_in != c_out {
            true => Some(ld.conv(&format!("{p}.conv_shortcut"), c_in, c_out, 1, 1).await?),
            false => None,
        };
        Ok(Resnet {
            norm1: ld.group_norm(&format!("{p}.norm1"), groups, c_in, eps).await?,
            conv1: ld.conv(&format!("{p}.conv1"), c_in, c_out, 3, 1).await?,
            temb,
            norm2: ld.group_norm(&format!("{p}.norm2"), groups, c_out, eps).await?,
            conv2: ld.conv(&format!("{p}.conv2"), c_out, c_out, 3, 1).await?,
            shortcut,
        })
    }

    /// x [B, C_in, H, W], temb [B, T] (already silu'd by the caller) → [B, C_out, H, W]
    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Result<Tensor<4>> {
        let mut h = self.conv1.forward(gpu, self.norm1.forward(gpu, x.clone(), true)?)?;
        if let (Some(proj), Some(t)) = (&self.temb, temb) {
            let [b, c] = t.dims();
            let e = proj.forward(gpu, t.clone().reshape([1, b, c]))?;
            let c_out = e.dims()[2];
            h = h + e.reshape([b, c_out, 1, 1]);
        }
        let h = self.conv2.forward(gpu, self.norm2.forward(gpu, h, true)?)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward(gpu, x)?,
            None => x,
        };
        Ok(skip + h)
    }
}

impl Resnet {
    /// The same block (no time embedding: the VAE's) over channel parts that each fit `budget`.
    pub fn forward_parts(&self, gpu: &Gpu, x: Parts, budget: u64) -> Result<Parts> {
        let h = Parts(x.0.clone()).try_map(|p, c0| self.norm1.forward_part(gpu, p, c0, true))?;
        let h = self.conv1.forward_parts(gpu, &h, self.norm2.unit(), budget)?;
        let h = h.try_map(|p, c0| self.norm2.forward_part(gpu, p, c0, true))?;
        let h = self.conv2.forward_parts(gpu, &h, self.norm2.unit(), budget)?;
        let skip = match &self.shortcut {
            Some(s) => s.forward_parts(gpu, &x, self.norm2.unit(), budget)?,
            None => x,
        };
        if skip.0.len() != h.0.len() {
            return Err(Error::ModelConfig("resnet parts out of step".into()));
        }
        Ok(Parts(skip.0.into_iter().zip(h.0).map(|(s, h)| s + h).collect()))
    }
}

/// Multi-head attention with separate q/k/v projections (no bias) and a biased output.
pub struct Attn {
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    heads: usize,
}

impl Attn {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, p: &str, dim: usize, ctx_dim: usize, heads: usize, qkv_bias: bool) -> Result<Attn> {
        Ok(Attn {
            q: ld.linear(&format!("{p}.to_q"), dim, dim, qkv_bias).await?,
            k: ld.linear(&format!("{p}.to_k"), ctx_dim, dim, qkv_bias).await?,
            v: ld.linear(&format!("{p}.to_v"), ctx_dim, dim, qkv_bias).await?,
            out: ld.linear(&format!("{p}.to_out.0"), dim, dim, true).await?,
            heads,
        })
    }

    /// x [B, T, C], ctx [B, S, C_ctx] (None: self-attention) → [B, T, C]
    pub fn forward(&self, gpu: &Gpu, x: Tensor<3>, ctx: Option<&Tensor<3>>) -> Result<Tensor<3>> {
        let c = ctx.cloned().unwrap_or_else(|| x.clone());
        let q = split_heads(self.q.forward(gpu, x)?, self.heads);
        let k = split_heads(self.k.forward(gpu, c.clone())?, self.heads);
        let v = split_heads(self.v.forward(gpu, c)?, self.heads);
        let a = attention(gpu, q, k, v, None, gpu.max_binding / 2)?;
        self.out.forward(gpu, merge_heads(a))
    }
}

struct BasicBlock {
    norm1: LayerNorm,
    attn1: Attn,
    norm2: LayerNorm,
    attn2: Attn,
    norm3: LayerNorm,
    geglu: Dense,
    ff_out: Dense,
    /// tanh-approximate GELU in GEGLU (candle's flavour) instead of diffusers' erf GELU.
    geglu_tanh: bool,
}

/// A 1×1 conv's weight [out, in, 1, 1] loaded as a linear layer over [B, H·W, C].
async fn pointwise<T: TensorStore>(ld: &Loader<'_, T>, p: &str, c_in: usize, c_out: usize, conv: bool) -> Result<Dense> {
    if !conv {
        return ld.linear(p, c_in, c_out, true).await;
    }
    let w = ld.file.f32(&format!("{p}.weight"), &[c_out, c_in, 1, 1]).await?;
    let b = ld.file.f32(&format!("{p}.bias"), &[c_out]).await?;
    ld.dense(w, Some(b), c_in, c_out)
}

pub struct Transformer2D {
    norm: GroupNorm,
    proj_in: Dense,
    blocks: Vec<BasicBlock>,
    proj_out: Dense,
}

impl Transformer2D {
    #[allow(clippy::too_many_arguments)]
    pub async fn load<T: TensorStore>(
        ld: &Loader<'_, T>,
        p: &str,
        c: usize,
        heads: usize,
        ctx_dim: usize,
        groups: usize,
        linear_proj: bool,
        geglu_tanh: bool,
    ) -> Result<Transformer2D> {
        let mut blocks = Vec::new();
        let b = format!("{p}.transformer_blocks.0");
        blocks.push(BasicBlock {
            norm1: ld.layer_norm(&format!("{b}.norm1"), c, 1e-5).await?,
            attn1: Attn::load(ld, &format!("{b}.attn1"), c, c, heads, false).await?,
            norm2: ld.layer_norm(&format!("{b}.norm2"), c, 1e-5).await?,
            attn2: Attn::load(ld, &format!("{b}.attn2"), c, ctx_dim, heads, false).await?,
            norm3: ld.layer_norm(&format!("{b}.norm3"), c, 1e-5).await?,
            geglu: ld.linear(&format!("{b}.ff.net.0.proj"), c, 8 * c, true).await?,
            ff_out: ld.linear(&format!("{b}.ff.net.2"), 4 * c, c, true).await?,
            geglu_tanh,
        });
        Ok(Transformer2D {
            norm: ld.group_norm(&format!("{p}.norm"), groups, c, 1e-6).await?,
            proj_in: pointwise(ld, &format!("{p}.proj_in"), c, c, !linear_proj).await?,
            blocks,
            proj_out: pointwise(ld, &format!("{p}.proj_out"), c, c, !linear_proj).await?,
        })
    }

    /// x [B, C, H, W], ctx [B, S, C_ctx] → [B, C, H, W]
    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>, ctx: &Tensor<3>) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let t = self.norm.forward(gpu, x.clone(), false)?.reshape([b, c, h * w]).swap_dims(1, 2);
        let mut t = self.proj_in.forward(gpu, t)?;
        for blk in &self.blocks {
            t = t.clone() + blk.attn1.forward(gpu, blk.norm1.forward(gpu, t)?, None)?;
            t = t.clone() + blk.attn2.forward(gpu, blk.norm2.forward(gpu, t)?, Some(ctx))?;
            let g = blk.geglu.forward(gpu, blk.norm3.forward(gpu, t.clone())?)?;
            let inner = g.dims()[2] / 2;
            // diffusers' GEGLU: hidden, gate = proj(x).chunk(2); hidden · gelu(gate)
            let hidden = g.clone().narrow(2, 0, inner);
            let gate = g.narrow(2, inner, inner);
            let gate = act(gpu, gate, if blk.geglu_tanh { Act::GeluTanh } else { Act::Gelu })?;
            t = t + blk.ff_out.forward(gpu, hidden * gate)?;
        }
        let t = self.proj_out.forward(gpu, t)?;
        Ok(t.swap_dims(1, 2).reshape([b, c, h, w]) + x)
    }
}

/// The VAE's mid-block attention: one head over all pixels, GroupNorm first, residual after.
pub struct SpatialSelfAttn {
    norm: GroupNorm,
    attn: Attn,
}

impl SpatialSelfAttn {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, p: &str, c: usize, groups: usize, eps: f64) -> Result<Self> {
        Ok(SpatialSelfAttn {
            norm: ld.group_norm(&format!("{p}.group_norm"), groups, c, eps).await?,
            attn: Attn::load(ld, p, c, c, 1, true).await?,
        })
    }

    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let t = self.norm.forward(gpu, x.clone(), false)?.reshape([b, c, h * w]).swap_dims(1, 2);
        let t = self.attn.forward(gpu, t, None)?;
        Ok(t.swap_dims(1, 2).reshape([b, c, h, w]) + x)
    }
}

/// Nearest-neighbour ×2 then a 3×3 conv.
pub struct Upsample {
    conv: Conv2d,
}

impl Upsample {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, p: &str, c: usize) -> Result<Upsample> {
        Ok(Upsample { conv: ld.conv(&format!("{p}.conv"), c, c, 3, 1).await? })
    }

    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>) -> Result<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let up = interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]));
        self.conv.forward(gpu, up)
    }

    /// ×2 then the conv, over channel parts; parts are cut first so each upsampled one fits.
    pub fn forward_parts(&self, gpu: &Gpu, x: Parts, unit: usize, budget: u64) -> Result<Parts> {
        let [b, c, h, w] = x.dims();
        let x = x.rechunk(part_channels(b, c, 2 * h, 2 * w, unit, budget));
        let up = x.try_map(|p, _| Ok(interpolate(p, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]))))?;
        self.conv.forward_parts(gpu, &up, unit, budget)
    }
}
