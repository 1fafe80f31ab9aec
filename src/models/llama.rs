//! The llama-family decoder (llama, qwen2, qwen3): pre-norm transformer, RMSNorm, RoPE, grouped
//! KV heads, SwiGLU FFN, optionally tied embeddings. `forward` reads like the paper:
//!
//! ```text
//! h = embed(tokens)                                   [t, d]
//! for each layer:
//!     qkv = rmsnorm(h) · Wqkvᵀ (+ b)                   [t, (H + 2·KV)·hd]
//!     q, cache[pos0..pos0+t] = rope(qkv)               q [H, t, hd]
//!     h += attention(q, cache) · Woᵀ                   [t, d]
//!     h += (silu(rmsnorm(h) · Wgᵀ) ⊙ (… · Wuᵀ)) · Wdᵀ   [t, d]
//! logits = rmsnorm(h) · Wembᵀ (or output.weight)       [rows, vocab]
//! ```
//!
//! Weights stay in their GGUF quant types on the GPU; only norms, biases and RoPE factors are
//! turned into f32. Each tensor is read from the source by its byte range and uploaded at once.

use burn::backend::wgpu::CubeTensor;

use super::config::{Arch, Config};
use crate::error::{Error, Result};
use crate::gguf::{GgufFile, TensorInfo};
use crate::gpu::Gpu;
use crate::kernels::attention::attention;
use crate::kernels::ffn::swiglu;
use crate::kernels::actquant::Numerics;
use crate::kernels::matmul::{get_rows, linear, linear_into, Linear};
use crate::kernels::norm::rms_norm;
use crate::kernels::rope::{rope_store, rope_table, HeadShape};
use crate::quant::{dequantize_row_to_vec, GgmlType};
use crate::source::ByteSource;

struct Layer {
    attn_norm: CubeTensor,
    qkv: Linear,
    qk_norm: Option<CubeTensor>,
    wo: Linear,
    ffn_norm: CubeTensor,
    gate_up: Linear,
    down: Linear,
}

pub struct Model {
    pub cfg: Config,
    /// The token embedding table [vocab, d], as a Linear so it can be split and shared with a
    /// tied LM head.
    embed: Linear,
    layers: Vec<Layer>,
    out_norm: CubeTensor,
    lm_head: Linear,
    rope: CubeTensor,
    /// Context this model instance was loaded for (KV caches are this long).
    pub ctx: usize,
    /// Bytes of weights uploaded.
    pub weight_bytes: usize,
    /// Bytes read per decoded token by the matmuls (all layers + LM head).
    pub matmul_bytes: usize,
    /// How the matmuls treat activations (exact f32, or llama.cpp's 8-bit rounding).
    pub numerics: Numerics,
}

/// The KV cache of one sequence: per layer K and V [n_kv, ctx, hd], allocated once.
pub struct KvCache {
    k: Vec<CubeTensor>,
    v: Vec<CubeTensor>,
    /// Number of positions filled.
    pub pos: usize,
    pub ctx: usize,
}

impl KvCache {
    pub fn clear(&mut self) {
        self.pos = 0;
    }
}

/// Progress while loading: (bytes uploaded, total bytes).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

struct Loader<'a, S: ByteSource> {
    g: &'a GgufFile,
    src: &'a S,
    done: u64,
    total: u64,
    progress: Progress<'a>,
}

impl<S: ByteSource> Loader<'_, S> {
    fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.g.tensor(name).ok_or_else(|| Error::ModelConfig(format!("missing tensor {name}")))
    }

    /// Raw bytes of a tensor whose ggml dims must equal `dims`.
    async fn raw(&mut self, name: &str, dims: &[usize]) -> Result<(GgmlType, Vec<u8>)> {
        let info = self.info(name)?;
        let got: Vec<usize> = info.dims.iter().map(|&d| d as usize).collect();
        if got != dims {
            return Err(Error::ModelConfig(format!("tensor {name} has shape {got:?}, expected {dims:?}")));
        }
        let (ty, off, n) = (info.ty, info.offset, info.n_bytes as usize);
        let bytes = self.src.read(off, n).await?;
        self.done += n as u64;
        (self.progress)(self.done, self.total);
        Ok((ty, bytes))
    }

    /// A small tensor (norm, bias, RoPE factors) as f32 on the CPU.
    async fn f32s(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (ty, bytes) = self.raw(name, &[len]).await?;
        let v = dequantize_row_to_vec(ty, &bytes).map_err(|e| Error::ModelConfig(format!("{name}: {e}")))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(Error::ModelConfig(format!("tensor {name} holds NaN or infinity")));
        }
        Ok(v)
    }

    async fn optional_f32s(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.g.tensor(name).is_none() {
            return Ok(None);
        }
        self.f32s(name, len).await.map(Some)
    }
}

impl Model {
    /// Load weights from `src` (whose header is `g`) for a context of `ctx` tokens.
    pub async fn load<S: ByteSource>(gpu: &Gpu, g: &GgufFile, src: &S, ctx: usize, progress: Progress<'_>) -> Result<Model> {
        let cfg = Config::from_gguf(g)?;
        if ctx == 0 || ctx > cfg.ctx_train.max(1) {
            return Err(Error::InvalidOption(format!("context {ctx} (the model was trained for {})", cfg.ctx_train)));
        }
        let total = g.tensors.iter().map(|t| t.n_bytes).sum();
        let mut l = Loader { g, src, done: 0, total, progress };
        let (d, hd, f) = (cfg.n_embd, cfg.head_dim, cfg.n_ff);
        let (qd, kvd) = (cfg.n_head * hd, cfg.n_kv * hd);

        let (ety, ebytes) = l.raw("token_embd.weight", &[d, cfg.vocab]).await?;
        let embed = Linear::upload(gpu, d, &[(ety, cfg.vocab, &ebytes)], None)?;
        drop(ebytes);

        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}");
            let attn_norm = gpu.upload_f32(&l.f32s(&p("attn_norm.weight"), d).await?, &[d]);
            let (qt, qb) = l.raw(&p("attn_q.weight"), &[d, qd]).await?;
            let (kt, kb) = l.raw(&p("attn_k.weight"), &[d, kvd]).await?;
            let (vt, vb) = l.raw(&p("attn_v.weight"), &[d, kvd]).await?;
            let bias = if cfg.arch == Arch::Qwen2 {
                let mut b = l.f32s(&p("attn_q.bias"), qd).await?;
                b.extend(l.f32s(&p("attn_k.bias"), kvd).await?);
                b.extend(l.f32s(&p("attn_v.bias"), kvd).await?);
                Some(b)
            } else {
                None
            };
            let qkv = Linear::upload(gpu, d, &[(qt, qd, &qb), (kt, kvd, &kb), (vt, kvd, &vb)], bias.as_deref())?;
            let qk_norm = if cfg.arch == Arch::Qwen3 {
                let mut w = l.f32s(&p("attn_q_norm.weight"), hd).await?;
                w.extend(l.f32s(&p("attn_k_norm.weight"), hd).await?);
                Some(gpu.upload_f32(&w, &[2 * hd]))
            } else {
                None
            };
            let (ot, ob) = l.raw(&p("attn_output.weight"), &[qd, d]).await?;
            let wo = Linear::upload(gpu, qd, &[(ot, d, &ob)], None)?;
            let ffn_norm = gpu.upload_f32(&l.f32s(&p("ffn_norm.weight"), d).await?, &[d]);
            let (gt, gb) = l.raw(&p("ffn_gate.weight"), &[d, f]).await?;
            let (ut, ub) = l.raw(&p("ffn_up.weight"), &[d, f]).await?;
            let gate_up = Linear::upload(gpu, d, &[(gt, f, &gb), (ut, f, &ub)], None)?;
            let (dt, db) = l.raw(&p("ffn_down.weight"), &[f, d]).await?;
            let down = Linear::upload(gpu, f, &[(dt, d, &db)], None)?;
            layers.push(Layer { attn_norm, qkv, qk_norm, wo, ffn_norm, gate_up, down });
        }
        let out_norm = gpu.upload_f32(&l.f32s("output_norm.weight", d).await?, &[d]);
        let lm_head = if g.tensor("output.weight").is_some() {
            let (t, b) = l.raw("output.weight", &[d, cfg.vocab]).await?;
            Linear::upload(gpu, d, &[(t, cfg.vocab, &b)], None)?
        } else {
            // Tied embeddings: the LM head is the embedding matrix, the same GPU buffer.
            embed.clone()
        };
        let factors = l.optional_f32s("rope_freqs.weight", cfg.n_rot / 2).await?;
        let table = rope_table(ctx, cfg.n_rot, cfg.rope_base, 1.0 / cfg.rope_linear, factors.as_deref());
        let rope = gpu.upload_f32(&table, &[ctx, cfg.n_rot / 2, 2]);

        let layer_bytes: usize = layers.iter().map(|l| l.qkv.n_bytes() + l.wo.n_bytes() + l.gate_up.n_bytes() + l.down.n_bytes()).sum();
        let matmul_bytes = layer_bytes + lm_head.n_bytes();
        Ok(Model { cfg, embed, layers, out_norm, lm_head, rope, ctx, weight_bytes: l.done as usize, matmul_bytes, numerics: Numerics::F32 })
    }

    /// A fresh KV cache for this model's context.
    pub fn new_cache(&self, gpu: &Gpu) -> KvCache {
        let shape = [self.cfg.n_kv, self.ctx, self.cfg.head_dim];
        KvCache {
            k: (0..self.cfg.n_layer).map(|_| gpu.zeros_f32(&shape)).collect(),
            v: (0..self.cfg.n_layer).map(|_| gpu.zeros_f32(&shape)).collect(),
            pos: 0,
            ctx: self.ctx,
        }
    }

    fn head_shape(&self) -> HeadShape {
        HeadShape { n_head: self.cfg.n_head, n_kv: self.cfg.n_kv, hd: self.cfg.head_dim, n_rot: self.cfg.n_rot, mode: self.cfg.rope_mode }
    }

    /// Run `tokens` at positions cache.pos.. and append them to the cache. Returns logits
    /// [rows, vocab]: every position if `all_logits`, else only the last. Queues GPU work only;
    /// the caller reads the logits back (the one GPU→CPU transfer of a step).
    pub fn forward(&self, gpu: &Gpu, tokens: &[u32], cache: &mut KvCache, all_logits: bool) -> Result<CubeTensor> {
        let t = tokens.len();
        let pos0 = cache.pos;
        if t == 0 {
            return Err(Error::InvalidOption("forward of zero tokens".into()));
        }
        if pos0 + t > cache.ctx {
            return Err(Error::ContextOverflow { prompt: pos0 + t, ctx: cache.ctx });
        }
        if let Some(&bad) = tokens.iter().find(|&&id| id as usize >= self.cfg.vocab) {
            return Err(Error::InvalidOption(format!("token id {bad} outside the vocabulary of {}", self.cfg.vocab)));
        }
        let (d, eps, ctx) = (self.cfg.n_embd, self.cfg.eps, cache.ctx);
        let shape = self.head_shape();
        let nm = self.numerics;
        let ids = gpu.upload_u32(tokens);
        let h = get_rows(gpu, &self.embed, &ids, t); // [t, d]
        for (i, layer) in self.layers.iter().enumerate() {
            let x = rms_norm(gpu, &h, &layer.attn_norm, d, 0, t, eps);
            let qkv = linear(gpu, &x, &layer.qkv, t, nm); // [t, (H+2KV)·hd]
            let qk_norm = layer.qk_norm.as_ref().map(|w| (w, eps));
            let q = rope_store(gpu, &qkv, &self.rope, qk_norm, &cache.k[i], &cache.v[i], shape, t, pos0, ctx);
            let a = attention(gpu, &q, &cache.k[i], &cache.v[i], shape, t, pos0, ctx); // [t, H·hd]
            linear_into(gpu, &a, &layer.wo, t, &h, true, nm); // h += a·Woᵀ
            let x = rms_norm(gpu, &h, &layer.ffn_norm, d, 0, t, eps);
            let gu = linear(gpu, &x, &layer.gate_up, t, nm); // [t, 2f]
            let g = swiglu(gpu, &gu, self.cfg.n_ff, t); // [t, f]
            linear_into(gpu, &g, &layer.down, t, &h, true, nm); // h += g·Wdᵀ
        }
        let rows = if all_logits { t } else { 1 };
        let x = rms_norm(gpu, &h, &self.out_norm, d, t - rows, rows, eps);
        let logits = linear(gpu, &x, &self.lm_head, rows, nm); // [rows, vocab]
        cache.pos += t;
        Ok(logits)
    }

    /// The LM head alone (for the GEMV bandwidth benchmark).
    pub fn lm_head_gemv(&self, gpu: &Gpu, x: &CubeTensor) -> CubeTensor {
        linear(gpu, x, &self.lm_head, 1, self.numerics)
    }

    /// Buffers the embedding table is split over (more than one when it exceeds the binding limit).
    pub fn embed_parts(&self) -> usize {
        self.embed.parts.len()
    }

    pub fn lm_head_bytes(&self) -> usize {
        self.lm_head.n_bytes()
    }
}
