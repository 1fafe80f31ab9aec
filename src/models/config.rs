//! Hyper-parameters of a llama-family decoder, read from GGUF metadata and checked before any
//! GPU memory is touched. Supported `general.architecture`: `llama` (SmolLM2, TinyLlama,
//! Llama-3.x with `rope_freqs`), `qwen2` (QKV bias), `qwen3` (per-head q/k RMSNorm).

use crate::error::{Error, Result};
use crate::gguf::GgufFile;
use crate::kernels::rope::RopeMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Qwen3,
}

impl Arch {
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub arch: Arch,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    pub n_rot: usize,
    pub rope_base: f32,
    /// Linear RoPE scaling: positions are divided by this (1 = none).
    pub rope_linear: f32,
    pub rope_mode: RopeMode,
    pub eps: f32,
    pub ctx_train: usize,
    pub vocab: usize,
}

fn need(g: &GgufFile, key: &str) -> Result<u64> {
    g.get_u64(key)?.ok_or_else(|| Error::ModelConfig(format!("missing metadata key {key}")))
}

fn check(cond: bool, what: impl FnOnce() -> String) -> Result<()> {
    if cond {
        Ok(())
    } else {
        Err(Error::ModelConfig(what()))
    }
}

impl Config {
    pub fn from_gguf(g: &GgufFile) -> Result<Config> {
        let arch_name = g
            .get_str("general.architecture")?
            .ok_or_else(|| Error::ModelConfig("missing general.architecture".into()))?;
        let arch = match arch_name {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            other => {
                return Err(Error::UnsupportedModel(format!(
                    "architecture '{other}' (supported: llama, qwen2, qwen3)"
                )))
            }
        };
        let a = arch_name;
        let n_embd = need(g, &format!("{a}.embedding_length"))? as usize;
        let n_layer = need(g, &format!("{a}.block_count"))? as usize;
        let n_ff = need(g, &format!("{a}.feed_forward_length"))? as usize;
        let n_head = need(g, &format!("{a}.attention.head_count"))? as usize;
        let n_kv = g.get_u64(&format!("{a}.attention.head_count_kv"))?.map_or(n_head, |v| v as usize);
        check(n_head > 0 && n_head <= 1024, || format!("head_count {n_head}"))?;
        let head_dim = match g.get_u64(&format!("{a}.attention.key_length"))? {
            Some(v) => v as usize,
            None => n_embd / n_head,
        };
        let n_rot = g.get_u64(&format!("{a}.rope.dimension_count"))?.map_or(head_dim, |v| v as usize);
        let rope_base = g.get_f32(&format!("{a}.rope.freq_base"))?.unwrap_or(10000.0);
        let eps = g.get_f32(&format!("{a}.attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);
        let ctx_train = need(g, &format!("{a}.context_length"))? as usize;
        let rope_linear = match g.get_str(&format!("{a}.rope.scaling.type"))? {
            None | Some("none") => 1.0,
            Some("linear") => g.get_f32(&format!("{a}.rope.scaling.factor"))?.unwrap_or(1.0),
            Some(other) => return Err(Error::UnsupportedModel(format!("RoPE scaling '{other}'"))),
        };
        let embd = g
            .tensor("token_embd.weight")
            .ok_or_else(|| Error::ModelConfig("missing tensor token_embd.weight".into()))?;
        let vocab = embd.dims.get(1).copied().unwrap_or(0) as usize;

        check(n_embd > 0 && n_embd <= 1 << 16, || format!("embedding_length {n_embd}"))?;
        check((1..=1024).contains(&n_layer), || format!("block_count {n_layer}"))?;
        check(n_ff > 0 && n_ff <= 1 << 18, || format!("feed_forward_length {n_ff}"))?;
        check(n_kv > 0 && n_head % n_kv == 0, || format!("head_count {n_head} is not a multiple of head_count_kv {n_kv}"))?;
        check(head_dim > 0 && head_dim <= 256, || format!("head dim {head_dim} (the attention kernel takes up to 256)"))?;
        check(n_rot > 0 && n_rot <= head_dim && n_rot % 2 == 0, || format!("rope dimension {n_rot} with head dim {head_dim}"))?;
        check(rope_base.is_finite() && rope_base > 0.0, || format!("rope freq_base {rope_base}"))?;
        check(rope_linear.is_finite() && rope_linear > 0.0, || format!("rope scaling factor {rope_linear}"))?;
        check(eps.is_finite() && eps > 0.0 && eps < 1.0, || format!("rms epsilon {eps}"))?;
        check(ctx_train > 0 && ctx_train <= 1 << 24, || format!("context_length {ctx_train}"))?;
        check(vocab > 0 && embd.dims.first() == Some(&(n_embd as u64)), || {
            format!("token_embd.weight has shape {:?}, expected [{n_embd}, vocab]", embd.dims)
        })?;
        if let Some(v) = g.get_u64(&format!("{a}.vocab_size"))? {
            check(v as usize == vocab, || format!("vocab_size {v} but token_embd has {vocab} rows"))?;
        }
        let rope_mode = match arch {
            // llama.cpp's converter permutes Q/K of `llama` models for adjacent-pair rotation.
            Arch::Llama => RopeMode::Adjacent,
            Arch::Qwen2 | Arch::Qwen3 => RopeMode::Neox,
        };
        Ok(Config {
            arch,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_kv,
            head_dim,
            n_rot,
            rope_base,
            rope_linear,
            rope_mode,
            eps,
            ctx_train,
            vocab,
        })
    }

    /// Width of the fused Q|K|V projection.
    pub fn qkv_dim(&self) -> usize {
        (self.n_head + 2 * self.n_kv) * self.head_dim
    }
}
