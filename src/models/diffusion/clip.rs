//! CLIP text encoder (Radford et al. 2021), the conditioning of Stable Diffusion: token ids
//! [B, 77] → hidden states [B, 77, D] after the final LayerNorm.
//!
//! Pre-LN transformer with a causal mask, learned positions, MLP with `quick_gelu`
//! (x·σ(1.702x), OpenAI CLIP / SD 1.x) or erf `gelu` (OpenCLIP / SD 2.x). SD 2.x uses the
//! penultimate layer: its diffusers checkpoints simply ship 23 of OpenCLIP-H's 24 layers, so
//! "all layers, then final_layer_norm" is right for both. Names as transformers' CLIPTextModel
//! (`text_model.encoder.layers.N.self_attn.q_proj`, …).

use crate::kernels::activation::{act, Act as Kernel};
use burn::tensor::{Int, Tensor, TensorData};

use super::config::ClipConfig;
use super::nn::{attention, merge_heads, split_heads, Dense, LayerNorm, Loader};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use super::store::TensorStore;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    QuickGelu,
    Gelu,
}

struct Layer {
    ln1: LayerNorm,
    q: Dense,
    k: Dense,
    v: Dense,
    out: Dense,
    ln2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

pub struct ClipText {
    pub cfg: ClipConfig,
    act: Act,
    /// The token table in row blocks that each fit one storage binding (SD 1.x's is 49408 × 768
    /// f32 = 145 MiB, over a 128 MiB limit).
    token_parts: Vec<Tensor<2>>,
    rows_per_part: usize,
    position_embedding: Tensor<2>,
    layers: Vec<Layer>,
    final_ln: LayerNorm,
}

impl ClipText {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>, cfg: ClipConfig) -> Result<ClipText> {
        let act = match cfg.hidden_act.as_str() {
            "quick_gelu" => Act::QuickGelu,
            "gelu" => Act::Gelu,
            other => return Err(Error::UnsupportedModel(format!("CLIP activation `{other}`"))),
        };
        let d = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || d % cfg.num_attention_heads != 0 {
            return Err(Error::ModelConfig(format!("CLIP width {d} in {} heads", cfg.num_attention_heads)));
        }
        let eps = cfg.layer_norm_eps;
        let p = "text_model";
        let table = ld.file.f32(&format!("{p}.embeddings.token_embedding.weight"), &[cfg.vocab_size, d]).await?;
        let rows_per_part = ((ld.gpu.max_binding / (4 * d as u64)) as usize).clamp(1, cfg.vocab_size.max(1));
        let token_parts = table.chunks(rows_per_part * d).map(|c| ld.upload(c.to_vec(), [c.len() / d, d])).collect();
        let position_embedding =
            ld.tensor(&format!("{p}.embeddings.position_embedding.weight"), [cfg.max_position_embeddings, d]).await?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = format!("{p}.encoder.layers.{i}");
            layers.push(Layer {
                ln1: ld.layer_norm(&format!("{l}.layer_norm1"), d, eps).await?,
                q: ld.linear(&format!("{l}.self_attn.q_proj"), d, d, true).await?,
                k: ld.linear(&format!("{l}.self_attn.k_proj"), d, d, true).await?,
                v: ld.linear(&format!("{l}.self_attn.v_proj"), d, d, true).await?,
                out: ld.linear(&format!("{l}.self_attn.out_proj"), d, d, true).await?,
                ln2: ld.layer_norm(&format!("{l}.layer_norm2"), d, eps).await?,
                fc1: ld.linear(&format!("{l}.mlp.fc1"), d, cfg.intermediate_size, true).await?,
                fc2: ld.linear(&format!("{l}.mlp.fc2"), cfg.intermediate_size, d, true).await?,
            });
        }
        let final_ln = ld.layer_norm(&format!("{p}.final_layer_norm"), d, eps).await?;
        Ok(ClipText { cfg, act, token_parts, rows_per_part, position_embedding, layers, final_ln })
    }

    /// ids: B rows of T ≤ max_position_embeddings token ids → [B, T, D].
    pub fn forward(&self, gpu: &Gpu, ids: &[Vec<u32>]) -> Result<Tensor<3>> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || t > self.cfg.max_position_embeddings || ids.iter().any(|r| r.len() != t) {
            return Err(Error::InvalidOption(format!(
                "CLIP input must be B rows of the same length ≤ {}",
                self.cfg.max_position_embeddings
            )));
        }
        if let Some(&bad) = ids.iter().flatten().find(|&&id| id as usize >= self.cfg.vocab_size) {
            return Err(Error::InvalidOption(format!("token id {bad} outside the CLIP vocabulary")));
        }
        let d = self.cfg.hidden_size;
        let flat: Vec<i32> = ids.iter().flatten().map(|&id| id as i32).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(flat, [b * t]), &gpu.device);
        // [B·T, D] + positions [T, D]
        let tok = match self.token_parts.len() {
            1 => self.token_parts[0].clone().select(0, idx),
            _ => {
                // One row slice per id from its block (B·T ≤ a few hundred: cheap).
                let rows = ids
                    .iter()
                    .flatten()
                    .map(|&id| {
                        let (part, row) = (id as usize / self.rows_per_part, id as usize % self.rows_per_part);
                        self.token_parts[part].clone().narrow(0, row, 1)
                    })
                    .collect();
                Tensor::cat(rows, 0)
            }
        }
        .reshape([b, t, d]);
        let pos = self.position_embedding.clone().narrow(0, 0, t).unsqueeze_dim::<3>(0);
        let mut x = tok + pos;
        // Causal mask [1, 1, T, T]: 0 on and below the diagonal, -inf above.
        let mut m = vec![0f32; t * t];
        for i in 0..t {
            for j in i + 1..t {
                m[i * t + j] = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::<4>::from_data(TensorData::new(m, [1, 1, t, t]), &gpu.device);
        let heads = self.cfg.num_attention_heads;
        for l in &self.layers {
            let h = l.ln1.forward(gpu, x.clone())?;
            let q = split_heads(l.q.forward(gpu, h.clone())?, heads);
            let k = split_heads(l.k.forward(gpu, h.clone())?, heads);
            let v = split_heads(l.v.forward(gpu, h)?, heads);
            let a = merge_heads(attention(gpu, q, k, v, Some(mask.clone()), gpu.max_binding / 2)?);
            x = x + l.out.forward(gpu, a)?;
            let h = l.fc1.forward(gpu, l.ln2.forward(gpu, x.clone())?)?;
            let h = act(gpu, h, match self.act {
                Act::QuickGelu => Kernel::QuickGelu,
                Act::Gelu => Kernel::Gelu,
            })?;
            x = x + l.fc2.forward(gpu, h)?;
        }
        self.final_ln.forward(gpu, x)
    }
}
