//! Single-file Stable Diffusion checkpoints (the original CompVis / Stability layout that
//! `v1-5-pruned-emaonly.safetensors` and stable-diffusion.cpp's GGUF files use): the UNet under
//! `model.diffusion_model.`, the VAE under `first_stage_model.`, the text encoder under
//! `cond_stage_model.transformer.` (SD 1.x, OpenAI CLIP in transformers' names) or
//! `cond_stage_model.model.` (SD 2.x, OpenCLIP's own names).
//!
//! Owns the original → diffusers name tables (the inverse of diffusers'
//! `convert_diffusers_to_original_stable_diffusion.py`) and the hyper-parameters a single file
//! implies by its shapes ([`infer_unet`], [`infer_vae`], [`infer_clip`]).
//!
//! Traps: the UNet's `input_blocks.k` / `output_blocks.k` numbering depends on
//! `layers_per_block` (k = 1 + i·(L+1) + j), so L is read from where the first downsampler sits
//! before anything is renamed; an up block's upsampler is `output_blocks.k.1.conv` when the
//! block has no attention and `.2.conv` when it has; the VAE decoder's `up.i` counts from the
//! lowest resolution up while diffusers' `up_blocks.i` counts down; SD 2.x stores 24 OpenCLIP
//! layers but uses the penultimate one, so the last is dropped here (as diffusers' conversion
//! does) and the model runs every layer it is given.

use std::collections::HashMap;

use serde_json::json;

use super::config::{ClipConfig, UnetConfig, VaeConfig};
use super::store::{Mapped, TensorStore};
use crate::error::{Error, Result};

pub const UNET: &str = "model.diffusion_model.";
pub const VAE: &str = "first_stage_model.";
const CLIP_V1: &str = "cond_stage_model.transformer.";
const CLIP_V2: &str = "cond_stage_model.model.";

/// Which text encoder a single file carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// SD 1.x: OpenAI CLIP ViT-L/14, quick_gelu, the last layer.
    V1,
    /// SD 2.x: OpenCLIP ViT-H/14, gelu, the penultimate layer.
    V2,
}

/// The three components' diffusers-named views of one single-file checkpoint.
pub struct Tables {
    pub family: Family,
    pub unet: HashMap<String, Mapped>,
    pub vae: HashMap<String, Mapped>,
    pub clip: HashMap<String, Mapped>,
}

fn bad(label: &str, what: impl std::fmt::Display) -> Error {
    Error::WeightsFormat(format!("{label}: {what}"))
}

/// Split `"12.rest"` into `(12, "rest")`.
fn index(s: &str) -> Option<(usize, &str)> {
    let (n, rest) = s.split_once('.')?;
    Some((n.parse().ok()?, rest))
}

fn unet_resnet(rest: &str) -> String {
    for (from, to) in [
        ("in_layers.0.", "norm1."),
        ("in_layers.2.", "conv1."),
        ("emb_layers.1.", "time_emb_proj."),
        ("out_layers.0.", "norm2."),
        ("out_layers.3.", "conv2."),
        ("skip_connection.", "conv_shortcut."),
    ] {
        if let Some(r) = rest.strip_prefix(from) {
            return format!("{to}{r}");
        }
    }
    rest.to_string()
}

/// An original UNet name (after `model.diffusion_model.`) → its diffusers name, given
/// `layers_per_block`.
pub fn unet_name(s: &str, lpb: usize) -> Option<String> {
    let per = lpb + 1;
    for (from, to) in [
        ("time_embed.0.", "time_embedding.linear_1."),
        ("time_embed.2.", "time_embedding.linear_2."),
        ("input_blocks.0.0.", "conv_in."),
        ("out.0.", "conv_norm_out."),
        ("out.2.", "conv_out."),
    ] {
        if let Some(r) = s.strip_prefix(from) {
            return Some(format!("{to}{r}"));
        }
    }
    if let Some(r) = s.strip_prefix("middle_block.") {
        let (m, rest) = index(r)?;
        return match m {
            0 | 2 => Some(format!("mid_block.resnets.{}.{}", m / 2, unet_resnet(rest))),
            1 => Some(format!("mid_block.attentions.0.{rest}")),
            _ => None,
        };
    }
    if let Some(r) = s.strip_prefix("input_blocks.") {
        let (k, r) = index(r)?;
        let (m, rest) = index(r)?;
        if k == 0 {
            return None;
        }
        if k % per == 0 {
            let r = rest.strip_prefix("op.")?;
            return Some(format!("down_blocks.{}.downsamplers.0.conv.{r}", k / per - 1));
        }
        let (i, j) = ((k - 1) / per, (k - 1) % per);
        return match m {
            0 => Some(format!("down_blocks.{i}.resnets.{j}.{}", unet_resnet(rest))),
            1 => Some(format!("down_blocks.{i}.attentions.{j}.{rest}")),
            _ => None,
        };
    }
    if let Some(r) = s.strip_prefix("output_blocks.") {
        let (k, r) = index(r)?;
        let (m, rest) = index(r)?;
        let (i, j) = (k / per, k % per);
        return match (m, rest.starts_with("conv.")) {
            (0, _) => Some(format!("up_blocks.{i}.resnets.{j}.{}", unet_resnet(rest))),
            (1 | 2, true) => Some(format!("up_blocks.{i}.upsamplers.0.{rest}")),
            (1, false) => Some(format!("up_blocks.{i}.attentions.{j}.{rest}")),
            _ => None,
        };
    }
    None
}

fn vae_resnet(rest: &str) -> String {
    match rest.strip_prefix("nin_shortcut.") {
        Some(r) => format!("conv_shortcut.{r}"),
        None => rest.to_string(),
    }
}

/// An original VAE name (after `first_stage_model.`) → its diffusers name, given the number of
/// resolution levels.
pub fn vae_name(s: &str, levels: usize) -> Option<String> {
    let (part, r) = s.split_once('.')?;
    match part {
        "quant_conv" | "post_quant_conv" => return Some(s.to_string()),
        "encoder" | "decoder" => {}
        _ => return None,
    }
    let p = part;
    if let Some(rest) = r.strip_prefix("norm_out.") {
        return Some(format!("{p}.conv_norm_out.{rest}"));
    }
    if r.starts_with("conv_in.") || r.starts_with("conv_out.") {
        return Some(s.to_string());
    }
    if let Some(m) = r.strip_prefix("mid.") {
        if let Some(rest) = m.strip_prefix("block_1.") {
            return Some(format!("{p}.mid_block.resnets.0.{}", vae_resnet(rest)));
        }
        if let Some(rest) = m.strip_prefix("block_2.") {
            return Some(format!("{p}.mid_block.resnets.1.{}", vae_resnet(rest)));
        }
        let a = m.strip_prefix("attn_1.")?;
        for (from, to) in [("norm.", "group_norm."), ("q.", "to_q."), ("k.", "to_k."), ("v.", "to_v."), ("proj_out.", "to_out.0.")] {
            if let Some(rest) = a.strip_prefix(from) {
                return Some(format!("{p}.mid_block.attentions.0.{to}{rest}"));
            }
        }
        return None;
    }
    let (dir, r) = r.split_once('.')?;
    let (i, rest) = index(r)?;
    let (block, i) = match (p, dir) {
        ("encoder", "down") => ("down_blocks", i),
        ("decoder", "up") => ("up_blocks", levels.checked_sub(i + 1)?),
        _ => return None,
    };
    if let Some(r) = rest.strip_prefix("block.") {
        let (j, rest) = index(r)?;
        return Some(format!("{p}.{block}.{i}.resnets.{j}.{}", vae_resnet(rest)));
    }
    for kind in ["downsample.", "upsample."] {
        if let Some(rest) = rest.strip_prefix(kind) {
            let s = if kind == "downsample." { "downsamplers" } else { "upsamplers" };
            return Some(format!("{p}.{block}.{i}.{s}.0.{rest}"));
        }
    }
    None
}

/// An OpenCLIP text-tower name (after `cond_stage_model.model.`) → transformers' names: one
/// name, or three (q, k, v) for the fused input projection.
fn openclip_names(s: &str) -> Vec<String> {
    let m = "text_model";
    match s {
        "token_embedding.weight" => return vec![format!("{m}.embeddings.token_embedding.weight")],
        "positional_embedding" => return vec![format!("{m}.embeddings.position_embedding.weight")],
        _ => {}
    }
    if let Some(rest) = s.strip_prefix("ln_final.") {
        return vec![format!("{m}.final_layer_norm.{rest}")];
    }
    let Some((i, rest)) = s.strip_prefix("transformer.resblocks.").and_then(index) else { return vec![] };
    let l = format!("{m}.encoder.layers.{i}");
    match rest {
        "attn.in_proj_weight" | "attn.in_proj_bias" => {
            let what = if rest.ends_with("weight") { "weight" } else { "bias" };
            ["q_proj", "k_proj", "v_proj"].iter().map(|q| format!("{l}.self_attn.{q}.{what}")).collect()
        }
        _ => {
            for (from, to) in [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."), ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")] {
                if let Some(r) = rest.strip_prefix(from) {
                    return vec![format!("{l}.{to}{r}")];
                }
            }
            vec![]
        }
    }
}

/// Count `{prefix}{i}{suffix}` names for i = 0, 1, … until one is missing.
fn count<T: TensorStore + ?Sized>(st: &T, prefix: &str, suffix: &str) -> usize {
    (0..).take_while(|i| st.contains(&format!("{prefix}{i}{suffix}"))).count()
}

/// Index a single file: which family, and each component's diffusers-named table.
pub fn tables<T: TensorStore>(st: &T) -> Result<Tables> {
    let label = st.label().to_string();
    let names = st.names();
    if !names.iter().any(|n| n.starts_with(UNET)) {
        return Err(bad(
            &label,
            "no `model.diffusion_model.*` tensors: not a single-file Stable Diffusion checkpoint (a diffusers folder is loaded by its directory)",
        ));
    }
    // layers_per_block: the first downsampler sits at input_blocks.{L+1}.
    let lpb = (1..64)
        .find(|k| st.contains(&format!("{UNET}input_blocks.{k}.0.op.weight")))
        .map(|k| k - 1)
        .unwrap_or_else(|| count(st, &format!("{UNET}input_blocks."), ".0.in_layers.0.weight").saturating_sub(1));
    let levels = count(st, &format!("{VAE}decoder.up."), ".block.0.conv1.weight");
    let family = if names.iter().any(|n| n.starts_with(CLIP_V2)) { Family::V2 } else { Family::V1 };
    let clip_layers = count(st, &format!("{CLIP_V2}transformer.resblocks."), ".ln_1.weight");
    let mut t = Tables { family, unet: HashMap::new(), vae: HashMap::new(), clip: HashMap::new() };
    for n in &names {
        let shape = st.shape(n)?;
        let plain = |to: String| (to, Mapped { stored: n.clone(), shape: shape.clone(), rows: None });
        if let Some(s) = n.strip_prefix(UNET) {
            t.unet.extend(unet_name(s, lpb).map(plain));
        } else if let Some(s) = n.strip_prefix(VAE) {
            if let Some(to) = vae_name(s, levels) {
                // mid-block attention: a 1×1 conv [C, C, 1, 1] seen as diffusers' linear [C, C]
                let seen = match to.contains(".attentions.0.to_") && shape.len() == 4 {
                    true => shape[..2].to_vec(),
                    false => shape.clone(),
                };
                t.vae.insert(to, Mapped { stored: n.clone(), shape: seen, rows: None });
            }
        } else if let Some(s) = n.strip_prefix(CLIP_V1) {
            if !s.ends_with("position_ids") {
                let s = if s.starts_with("text_model.") { s.to_string() } else { format!("text_model.{s}") };
                t.clip.extend([plain(s)]);
            }
        } else if let Some(s) = n.strip_prefix(CLIP_V2) {
            // SD 2.x uses the penultimate layer: the last stored one is left out.
            if s.starts_with(&format!("transformer.resblocks.{}.", clip_layers.saturating_sub(1))) {
                continue;
            }
            let to = openclip_names(s);
            if to.len() == 3 {
                let d = shape[0] / 3;
                for (k, name) in to.into_iter().enumerate() {
                    let mut seen = shape.clone();
                    seen[0] = d;
                    t.clip.insert(name, Mapped { stored: n.clone(), shape: seen, rows: Some((k * d, d)) });
                }
            } else {
                t.clip.extend(to.into_iter().map(plain));
            }
        }
    }
    for (what, map) in [("VAE (first_stage_model.*)", &t.vae), ("text encoder (cond_stage_model.*)", &t.clip)] {
        if map.is_empty() {
            return Err(bad(&label, format!("no {what} tensors: only complete checkpoints are supported")));
        }
    }
    Ok(t)
}

fn dim<T: TensorStore + ?Sized>(st: &T, name: &str, axis: usize) -> Result<usize> {
    st.shape(name)?
        .get(axis)
        .copied()
        .ok_or_else(|| bad(st.label(), format!("tensor `{name}` has no dimension {axis}")))
}

/// Heads of a block of `c` channels: SD 1.x has 8 everywhere, SD 2.x 64-channel heads (its
/// diffusers config says `attention_head_dim: [5, 10, 20, 20]`). Anything else needs a config.
fn heads_for(label: &str, family: Family, c: usize) -> Result<usize> {
    match family {
        Family::V1 => Ok(8),
        Family::V2 if c % 64 == 0 => Ok(c / 64),
        Family::V2 => Err(Error::ModelConfig(format!(
            "{label}: {c} channels are not 64-channel heads; give a diffusers folder's configs for this model (--config)"
        ))),
    }
}

/// UNet hyper-parameters from a diffusers-named view's shapes.
pub fn infer_unet<T: TensorStore>(st: &T, family: Family) -> Result<UnetConfig> {
    let label = st.label();
    let n = count(st, "down_blocks.", ".resnets.0.conv1.weight");
    let lpb = count(st, "down_blocks.0.resnets.", ".conv1.weight");
    if n == 0 || lpb == 0 {
        return Err(bad(label, "no UNet down blocks found"));
    }
    let mut boc = Vec::new();
    let (mut down, mut up, mut heads) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let c = dim(st, &format!("down_blocks.{i}.resnets.0.conv1.weight"), 0)?;
        boc.push(c);
        heads.push(heads_for(label, family, c)?);
        let attn = |p: &str| st.contains(&format!("{p}_blocks.{i}.attentions.0.proj_in.weight"));
        down.push(if attn("down") { "CrossAttnDownBlock2D" } else { "DownBlock2D" });
        up.push(if attn("up") { "CrossAttnUpBlock2D" } else { "UpBlock2D" });
    }
    let a = "mid_block.attentions.0";
    let cfg = json!({
        "in_channels": dim(st, "conv_in.weight", 1)?,
        "out_channels": dim(st, "conv_out.weight", 0)?,
        "block_out_channels": boc,
        "down_block_types": down,
        "up_block_types": up,
        "layers_per_block": lpb,
        "cross_attention_dim": dim(st, &format!("{a}.transformer_blocks.0.attn2.to_k.weight"), 1)?,
        "attention_head_dim": heads,
        "use_linear_projection": st.shape(&format!("{a}.proj_in.weight"))?.len() == 2,
        "transformer_layers_per_block": count(st, &format!("{a}.transformer_blocks."), ".norm1.weight"),
    });
    serde_json::from_value(cfg).map_err(|e| bad(label, format!("inferred UNet config: {e}")))
}

/// VAE hyper-parameters from a diffusers-named view's shapes (SD 1.x / 2.x scaling 0.18215).
pub fn infer_vae<T: TensorStore>(st: &T) -> Result<VaeConfig> {
    let label = st.label();
    let n = count(st, "decoder.up_blocks.", ".resnets.0.conv1.weight");
    let lpb = count(st, "decoder.up_blocks.0.resnets.", ".conv1.weight");
    if n == 0 || lpb < 2 {
        return Err(bad(label, "no VAE decoder blocks found"));
    }
    let boc: Vec<usize> = (0..n)
        .map(|i| dim(st, &format!("decoder.up_blocks.{}.resnets.0.conv2.weight", n - 1 - i), 0))
        .collect::<Result<_>>()?;
    let cfg = json!({
        "block_out_channels": boc,
        "layers_per_block": lpb - 1,
        "latent_channels": dim(st, "decoder.conv_in.weight", 1)?,
        "out_channels": dim(st, "decoder.conv_out.weight", 0)?,
    });
    serde_json::from_value(cfg).map_err(|e| bad(label, format!("inferred VAE config: {e}")))
}

/// Text-encoder hyper-parameters from a diffusers-named view's shapes (64-channel heads, as
/// ViT-L/14 and ViT-H/14 have).
pub fn infer_clip<T: TensorStore>(st: &T, family: Family) -> Result<ClipConfig> {
    let label = st.label();
    let tok = st.shape("text_model.embeddings.token_embedding.weight")?;
    let [vocab, d] = tok[..] else { return Err(bad(label, "token embedding is not 2-D")) };
    if d % 64 != 0 {
        return Err(Error::ModelConfig(format!(
            "{label}: a {d}-wide text encoder is not 64-channel heads; give a diffusers folder's configs for this model (--config)"
        )));
    }
    let cfg = json!({
        "vocab_size": vocab,
        "hidden_size": d,
        "intermediate_size": dim(st, "text_model.encoder.layers.0.mlp.fc1.weight", 0)?,
        "num_attention_heads": d / 64,
        "num_hidden_layers": count(st, "text_model.encoder.layers.", ".layer_norm1.weight"),
        "max_position_embeddings": dim(st, "text_model.embeddings.position_embedding.weight", 0)?,
        "hidden_act": if family == Family::V1 { "quick_gelu" } else { "gelu" },
    });
    serde_json::from_value(cfg).map_err(|e| bad(label, format!("inferred text-encoder config: {e}")))
}
