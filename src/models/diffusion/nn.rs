//! The layers the diffusion models are built from (linear, conv, group/layer norm, attention),
//! loaded from a safetensors checkpoint by name, on burn's wgpu tensors.
//!
//! Weights are f32 on the GPU by default. Linear layers run through our matmul kernel
//! (`shaders/matmul_q.wgsl`): as f32 rows, or with [`WeightQuant::Q8_0`] / [`WeightQuant::Q4_0`]
//! quantized once at load (GGUF block layout) and dequantized in registers; a layer whose input
//! width is not a whole number of 32-wide blocks stays f32 on burn's matmul. Convolutions are
//! quantized too, in blocks of 32 output channels of one tap (`shaders/conv2d.wgsl`).
//! Shapes follow PyTorch: activations [B, C, H, W] for convs, [B, T, C] for transformer layers;
//! linear weights [out, in], conv weights [out, in, kh, kw].

use burn::backend::wgpu::CubeTensor;
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::bmm::{bmm, BLayout};
use crate::kernels::flash_attn;
use crate::kernels::conv::{conv2d, conv2d_into, ConvShape, ConvWeight, ConvWindow};
use crate::kernels::matmul::{matmul, Linear};
use crate::kernels::norm::{group_norm, GroupShape};
use crate::kernels::softmax::softmax_rows;
use crate::quant::{quantize_q4_0, quantize_q8_0, GgmlType};
use super::store::TensorStore;

/// How linear weights are kept on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WeightQuant {
    #[default]
    F32,
    Q8_0,
    Q4_0,
}

impl WeightQuant {
    pub fn parse(s: &str) -> Result<WeightQuant> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(WeightQuant::F32),
            "q8_0" => Ok(WeightQuant::Q8_0),
            "q4_0" => Ok(WeightQuant::Q4_0),
            other => Err(Error::InvalidOption(format!("unknown weight quantization `{other}` (f32, q8_0, q4_0)"))),
        }
    }

    /// The GGUF block type weights are kept in.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            WeightQuant::F32 => GgmlType::F32,
            WeightQuant::Q8_0 => GgmlType::Q8_0,
            WeightQuant::Q4_0 => GgmlType::Q4_0,
        }
    }
}

/// Reads named tensors of one checkpoint (a safetensors file, a GGUF file, or a renamed view
/// of either) onto the GPU, counting what they take there.
pub struct Loader<'a, T: TensorStore> {
    pub file: &'a T,
    pub gpu: &'a Gpu,
    pub quant: WeightQuant,
    /// Bytes of weights uploaded so far.
    pub gpu_bytes: std::cell::Cell<u64>,
}

impl<'a, T: TensorStore> Loader<'a, T> {
    pub fn new(file: &'a T, gpu: &'a Gpu, quant: WeightQuant) -> Self {
        Loader { file, gpu, quant, gpu_bytes: std::cell::Cell::new(0) }
    }

    pub fn device(&self) -> &Device {
        &self.gpu.device
    }

    pub fn contains(&self, name: &str) -> bool {
        self.file.contains(name)
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        self.file.shape(name)
    }

    /// Upload f32 values as a tensor of the given shape.
    pub fn upload<const D: usize>(&self, data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        self.gpu_bytes.set(self.gpu_bytes.get() + 4 * data.len() as u64);
        Tensor::from_data(TensorData::new(data, shape), self.device())
    }

    pub async fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let data = self.file.f32(name, &shape).await?;
        Ok(self.upload(data, shape))
    }

    /// `{prefix}.weight` [n_out, n_in] and, if `bias`, `{prefix}.bias`.
    pub async fn linear(&self, prefix: &str, n_in: usize, n_out: usize, bias: bool) -> Result<Dense> {
        let name = format!("{prefix}.weight");
        let b = match bias {
            true => Some(self.file.f32(&format!("{prefix}.bias"), &[n_out]).await?),
            false => None,
        };
        // A weight stored pre-quantized in the type we keep (a GGUF file) goes up as it is.
        let ty = self.quant.ggml_type();
        if ty != GgmlType::F32 && n_in % 32 == 0 {
            crate::models::diffusion::store::check_shape(self.file.label(), &name, &self.file.shape(&name)?, &[n_out, n_in])?;
            if let Some(bytes) = self.file.blocks(&name, ty).await? {
                return self.quantized(&bytes, b, n_in, n_out);
            }
        }
        let w = self.file.f32(&name, &[n_out, n_in]).await?;
        self.dense(w, b, n_in, n_out)
    }

    fn quantized(&self, bytes: &[u8], b: Option<Vec<f32>>, n_in: usize, n_out: usize) -> Result<Dense> {
        let ty = self.quant.ggml_type();
        let lin = Linear::upload(self.gpu, n_in, &[(ty, n_out, bytes)], b.as_deref())?;
        let bias_bytes = 4 * b.as_ref().map_or(0, |b| b.len()) as u64;
        self.gpu_bytes.set(self.gpu_bytes.get() + lin.n_bytes() as u64 + bias_bytes);
        Ok(Dense::Quant(lin))
    }

    /// A linear layer from values already read (e.g. a 1×1 conv's weight).
    pub fn dense(&self, w: Vec<f32>, b: Option<Vec<f32>>, n_in: usize, n_out: usize) -> Result<Dense> {
        // f32 weights go through our matmul too (as F32 "blocks"): burn's matmul was several
        // times slower on lavapipe. Only widths our kernel cannot take fall back to burn.
        if n_in % 32 == 0 {
            let bytes = match self.quant.ggml_type() {
                GgmlType::Q8_0 => quantize_q8_0(&w),
                GgmlType::Q4_0 => quantize_q4_0(&w),
                _ => bytemuck::cast_slice(&w).to_vec(),
            };
            return self.quantized(&bytes, b, n_in, n_out);
        }
        // [n_out, n_in] → [n_in, n_out] once, so forward is a plain x · W.
        let mut wt = vec![0f32; w.len()];
        for o in 0..n_out {
            for i in 0..n_in {
                wt[i * n_out + o] = w[o * n_in + i];
            }
        }
        let wt = self.upload(wt, [n_in, n_out]);
        let b = b.map(|b| self.upload(b, [n_out]));
        Ok(Dense::F32 { wt, b })
    }

    /// `{prefix}.weight` [c_out, c_in, k, k] + `{prefix}.bias`, the weight quantized as the
    /// loader's linear layers are.
    pub async fn conv(&self, prefix: &str, c_in: usize, c_out: usize, k: usize, stride: usize) -> Result<Conv2d> {
        let b = self.file.f32(&format!("{prefix}.bias"), &[c_out]).await?;
        self.conv_with_bias(prefix, c_in, c_out, k, stride, b).await
    }

    /// A convolution stored without a bias (TAESD's after each upsample).
    pub async fn conv_no_bias(&self, prefix: &str, c_in: usize, c_out: usize, k: usize, stride: usize) -> Result<Conv2d> {
        self.conv_with_bias(prefix, c_in, c_out, k, stride, vec![0.0; c_out]).await
    }

    async fn conv_with_bias(&self, prefix: &str, c_in: usize, c_out: usize, k: usize, stride: usize, b: Vec<f32>) -> Result<Conv2d> {
        let w = self.file.f32(&format!("{prefix}.weight"), &[c_out, c_in, k, k]).await?;
        let w = ConvWeight::upload(self.gpu, &w, c_out, c_in, k, self.quant.ggml_type()).map_err(|e| match e {
            Error::ModelConfig(m) => Error::ModelConfig(format!("{prefix}: {m}")),
            e => e,
        })?;
        self.gpu_bytes.set(self.gpu_bytes.get() + w.n_bytes() as u64 + 4 * c_out as u64);
        Ok(Conv2d { w, b: self.gpu.upload_f32(&b, &[c_out]), stride, pad: k / 2, pad_end: k / 2 })
    }

    pub async fn group_norm(&self, prefix: &str, groups: usize, channels: usize, eps: f64) -> Result<GroupNorm> {
        if groups == 0 || channels % groups != 0 {
            return Err(Error::ModelConfig(format!("{prefix}: {channels} channels in {groups} groups")));
        }
        let (gamma, beta) = self.affine(prefix, channels).await?;
        Ok(GroupNorm { gamma, beta, groups, eps: eps as f32 })
    }

    pub async fn layer_norm(&self, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        let (gamma, beta) = self.affine(prefix, dim).await?;
        Ok(LayerNorm { gamma, beta, eps: eps as f32 })
    }

    /// A norm's per-channel scale and shift (`{prefix}.weight`, `{prefix}.bias`) as kernel inputs.
    async fn affine(&self, prefix: &str, n: usize) -> Result<(CubeTensor, CubeTensor)> {
        let gamma = Gpu::from_burn(self.tensor(&format!("{prefix}.weight"), [n]).await?)?;
        let beta = Gpu::from_burn(self.tensor(&format!("{prefix}.bias"), [n]).await?)?;
        Ok((gamma, beta))
    }
}

/// A linear layer: through our matmul kernel (f32 or quantized weights), or for widths that are
/// not a multiple of 32, f32 weights through burn's matmul.
pub enum Dense {
    F32 { wt: Tensor<2>, b: Option<Tensor<1>> },
    Quant(Linear),
}

impl Dense {
    /// x [B, T, n_in] → [B, T, n_out]
    pub fn forward(&self, gpu: &Gpu, x: Tensor<3>) -> Result<Tensor<3>> {
        let [b, t, n_in] = x.dims();
        let x2 = x.reshape([b * t, n_in]);
        let y = match self {
            Dense::F32 { wt, b: bias } => {
                // f32 weights through burn: f16 activations widen and come back narrowed.
                let dt = x2.dtype();
                let y = x2.cast(DType::F32).matmul(wt.clone());
                let y = match bias {
                    Some(bias) => y + bias.clone().unsqueeze_dim(0),
                    None => y,
                };
                y.cast(dt)
            }
            Dense::Quant(lin) => {
                let x2 = Gpu::from_burn(x2)?;
                Gpu::to_burn::<2>(matmul(gpu, &x2, lin, b * t))
            }
        };
        let n_out = y.dims()[1];
        Ok(y.reshape([b, t, n_out]))
    }
}

/// 2-D convolution through our kernel (`shaders/conv2d.wgsl`); "same" padding for odd kernels
/// unless changed (`pad` before, `pad_end` after, in both dimensions).
pub struct Conv2d {
    pub w: ConvWeight,
    pub b: CubeTensor,
    pub stride: usize,
    pub pad: usize,
    pub pad_end: usize,
}

impl Conv2d {
    /// x [B, C_in, H, W] → [B, C_out, H / stride, W / stride]
    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>) -> Result<Tensor<4>> {
        let [batch, ci, h, w] = x.dims();
        if self.w.ci != ci {
            return Err(Error::ModelConfig(format!("convolution expects {} input channels, got {ci}", self.w.ci)));
        }
        let y = conv2d(gpu, &Gpu::from_burn(x)?, &self.w, &self.b, self.shape(batch, ci, h, w, self.w.co))?;
        Ok(Gpu::to_burn(y))
    }

    fn shape(&self, batch: usize, ci: usize, h: usize, w: usize, co: usize) -> ConvShape {
        let (k, p, e) = (self.w.k, self.pad, self.pad_end);
        ConvShape { batch, ci, h, w, co, k, stride: self.stride, pad_t: p, pad_l: p, pad_b: e, pad_r: e }
    }
}

/// Activations `[B, C, H, W]` split along channels into parts that each fit one storage binding
/// (SD's VAE decoder at 512²: 256 channels × 512² × 4 B = 256 MiB, over lavapipe's and most
/// browsers' 128 MiB). Parts hold whole GroupNorm groups (`unit` channels), so normalising a
/// part is normalising those channels; a convolution sums over the input parts.
pub struct Parts(pub Vec<Tensor<4>>);

/// Channels per part: the largest multiple of `unit` whose `[b, k, h, w]` f32 tensor fits `budget`.
pub fn part_channels(b: usize, c: usize, h: usize, w: usize, unit: usize, budget: u64) -> usize {
    let per_channel = (4 * b * h * w) as u64;
    let k = (budget / per_channel.max(1)) as usize / unit.max(1) * unit.max(1);
    // Not `clamp`: a convolution's output unit (8 channels) may exceed its channels (the VAE's 3).
    k.max(unit.max(1)).min(c.max(1))
}

impl Parts {
    /// Split `x` into parts of at most `k` channels (`k` a multiple of the group size).
    pub fn split(x: Tensor<4>, k: usize) -> Parts {
        let c = x.dims()[1];
        if k >= c {
            return Parts(vec![x]);
        }
        Parts((0..c).step_by(k).map(|c0| x.clone().narrow(1, c0, k.min(c - c0))).collect())
    }

    /// The same channels in parts of at most `k` (each part is cut further; none is merged).
    pub fn rechunk(self, k: usize) -> Parts {
        Parts(self.0.into_iter().flat_map(|p| Parts::split(p, k).0).collect())
    }

    /// `[B, C_total, H, W]`
    pub fn dims(&self) -> [usize; 4] {
        let [b, _, h, w] = self.0.first().map_or([0; 4], |p| p.dims());
        [b, self.0.iter().map(|p| p.dims()[1]).sum(), h, w]
    }

    /// One tensor again (the caller knows it fits).
    pub fn join(mut self) -> Tensor<4> {
        match self.0.len() {
            1 => self.0.swap_remove(0),
            _ => Tensor::cat(self.0, 1),
        }
    }

    /// Apply `f(part, first_channel)` to every part; the first error ends it.
    pub fn try_map(self, mut f: impl FnMut(Tensor<4>, usize) -> Result<Tensor<4>>) -> Result<Parts> {
        let mut c0 = 0;
        let mut out = Vec::with_capacity(self.0.len());
        for p in self.0 {
            let c = p.dims()[1];
            out.push(f(p, c0)?);
            c0 += c;
        }
        Ok(Parts(out))
    }
}

impl Conv2d {
    /// The convolution over channel parts: output parts of whole `out_unit` groups under
    /// `budget`, each the sum over the input parts, accumulated in place (bias added once).
    pub fn forward_parts(&self, gpu: &Gpu, x: &Parts, out_unit: usize, budget: u64) -> Result<Parts> {
        let [b, ci_total, h, w] = x.dims();
        let (co, k) = (self.w.co, self.w.k);
        if self.w.ci != ci_total || h + self.pad + self.pad_end < k || w + self.pad + self.pad_end < k {
            return Err(Error::ModelConfig(format!("convolution expects {} input channels, got {ci_total} at {h}×{w}", self.w.ci)));
        }
        let ho = (h + self.pad + self.pad_end - k) / self.stride + 1;
        let wo = (w + self.pad + self.pad_end - k) / self.stride + 1;
        // Output parts start at multiples of 8 channels (the kernel's channel tile).
        let oc = part_channels(b, co, ho, wo, out_unit.max(1) * 8 / gcd(out_unit.max(1), 8), budget);
        if x.0.len() == 1 && oc >= co {
            return Ok(Parts(vec![self.forward(gpu, x.0[0].clone())?]));
        }
        let mut out = Vec::new();
        for o0 in (0..co).step_by(oc) {
            let on = oc.min(co - o0);
            let y = gpu.empty_f32(&[b, on, ho, wo]);
            let mut i0 = 0;
            for (n, xi) in x.0.iter().enumerate() {
                let ci = xi.dims()[1];
                let win = ConvWindow { o0, i0 };
                conv2d_into(gpu, &Gpu::from_burn(xi.clone())?, &self.w, &self.b, self.shape(b, ci, h, w, on), win, &y, n > 0, n == 0)?;
                i0 += ci;
            }
            out.push(Gpu::to_burn(y));
        }
        Ok(Parts(out))
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// GroupNorm (Wu & He 2018): statistics over each group of channels and all pixels, through
/// `shaders/group_norm.wgsl`, optionally with the SiLU that follows it in resnets fused in.
pub struct GroupNorm {
    gamma: CubeTensor,
    beta: CubeTensor,
    groups: usize,
    eps: f32,
}

impl GroupNorm {
    /// Channels per group.
    pub fn unit(&self) -> usize {
        self.gamma.meta.shape().num_elements() / self.groups
    }

    /// Normalise a part holding channels `c0..c0 + C` (whole groups) of the full tensor, then
    /// SiLU if `silu`.
    pub fn forward_part(&self, gpu: &Gpu, x: Tensor<4>, c0: usize, silu: bool) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        let s = GroupShape { batch: b, channels: c, spatial: h * w, groups: c / self.unit(), c0 };
        let y = group_norm(gpu, &Gpu::from_burn(x)?, &self.gamma, &self.beta, s, self.eps, silu);
        Ok(Gpu::to_burn(y))
    }

    /// Normalise the whole tensor, then SiLU if `silu`.
    pub fn forward(&self, gpu: &Gpu, x: Tensor<4>, silu: bool) -> Result<Tensor<4>> {
        self.forward_part(gpu, x, 0, silu)
    }
}

/// LayerNorm over the last dimension (`shaders/group_norm.wgsl` with one group per row).
pub struct LayerNorm {
    gamma: CubeTensor,
    beta: CubeTensor,
    eps: f32,
}

impl LayerNorm {
    pub fn forward(&self, gpu: &Gpu, x: Tensor<3>) -> Result<Tensor<3>> {
        let [b, t, c] = x.dims();
        let s = GroupShape { batch: b * t, channels: c, spatial: 1, groups: 1, c0: 0 };
        Ok(Gpu::to_burn(group_norm(gpu, &Gpu::from_burn(x)?, &self.gamma, &self.beta, s, self.eps, false)))
    }
}

/// Scaled dot-product attention, softmax(q·kᵀ·scale + mask)·v, for q [B, H, Tq, d],
/// k/v [B, H, Tk, d] → [B, H, Tq, d]. Without a mask, and for head sizes that are a multiple
/// of 4 up to 160, one fused kernel; otherwise (CLIP's causal mask, the VAE's 512-wide head)
/// bmm + softmax, with queries processed in chunks so the score matrix of one chunk stays under
/// `budget` bytes (a 64×64 latent has 4096 queries: the full matrix of 8 heads would be
/// 512 MiB, over most storage-binding limits).
pub fn attention(gpu: &Gpu, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4>>, budget: u64) -> Result<Tensor<4>> {
    let [b, h, tq, d] = q.dims();
    let tk = k.dims()[2];
    let bh = b * h;
    let scale = (1.0 / (d as f64).sqrt()) as f32;
    if mask.is_none() && flash_attn::supports(d) {
        // Fused: no score matrix, no softmax pass (shaders/flash_attn.wgsl).
        let [qc, kc, vc] = [q.reshape([bh, tq, d]), k.reshape([bh, tk, d]), v.reshape([bh, tk, d])].map(Gpu::from_burn);
        let o = flash_attn::flash_attn(gpu, &qc?, &kc?, &vc?, bh, tq, tk, d, scale);
        return Ok(Gpu::to_burn::<3>(o).reshape([b, h, tq, d]));
    }
    let dt = q.dtype();
    if dt != DType::F32 {
        // bmm and softmax are f32 only: widen, attend, narrow (no SD UNet head comes here).
        let mask = mask.map(|m| m.cast(DType::F32));
        let [q, k, v] = [q, k, v].map(|t| t.cast(DType::F32));
        return Ok(attention(gpu, q, k, v, mask, budget)?.cast(dt));
    }
    // Our batched matmul (bmm.wgsl) on contiguous [B·H, T, d] copies: burn's matmul ran these
    // shapes 10-100× slower on lavapipe, and its summation order is not ours to pin down.
    let kc = Gpu::from_burn(k.reshape([bh, tk, d]))?;
    let vc = Gpu::from_burn(v.reshape([bh, tk, d]))?;
    let per_query = (b * h * tk * 4) as u64;
    let chunk = ((budget / per_query.max(1)) as usize).clamp(1, tq);
    // `start`, `len`: the query rows of this chunk (the mask's rows follow them).
    let run = |q: Tensor<4>, start: usize, len: usize| -> Result<Tensor<4>> {
        let qc = Gpu::from_burn(q.reshape([bh, len, d]))?;
        let s = Gpu::to_burn::<3>(bmm(gpu, &qc, &kc, BLayout::Transposed, bh, len, tk, d, scale)).reshape([b, h, len, tk]);
        let s = match &mask {
            Some(m) if len == tq => s + m.clone(),
            Some(m) => s + m.clone().narrow(2, start, len),
            None => s,
        };
        let p = softmax_rows(gpu, &Gpu::from_burn(s)?, bh * len, tk);
        Ok(Gpu::to_burn::<3>(bmm(gpu, &p, &vc, BLayout::Plain, bh, len, d, tk, 1.0)).reshape([b, h, len, d]))
    };
    if chunk >= tq {
        return run(q, 0, tq);
    }
    let mut outs = Vec::with_capacity(tq.div_ceil(chunk));
    let mut start = 0;
    while start < tq {
        let len = chunk.min(tq - start);
        outs.push(run(q.clone().narrow(2, start, len), start, len)?);
        start += len;
    }
    Ok(Tensor::cat(outs, 2))
}

/// Read a tensor back to the CPU (row-major), waiting for the work queued before it.
pub async fn read_tensor<const D: usize>(gpu: &Gpu, t: Tensor<D>) -> Result<Vec<f32>> {
    gpu.read_f32(&Gpu::from_burn(t)?).await
}

/// [B, T, H·d] → [B, H, T, d]
pub fn split_heads(x: Tensor<3>, heads: usize) -> Tensor<4> {
    let [b, t, c] = x.dims();
    x.reshape([b, t, heads, c / heads]).swap_dims(1, 2)
}

/// [B, H, T, d] → [B, T, H·d]
pub fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, t, d] = x.dims();
    x.swap_dims(1, 2).reshape([b, t, h * d])
}
