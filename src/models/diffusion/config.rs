//! Hyper-parameters of the diffusion components, read from a diffusers folder's `config.json`
//! files (transformers' CLIPTextConfig, diffusers' UNet2DConditionModel and AutoencoderKL),
//! with the defaults those libraries use for keys a file leaves out.

use serde::Deserialize;

use crate::error::{Error, Result};

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::WeightsFormat(format!("{what}: {e}"))
}

/// `text_encoder/config.json`
#[derive(Clone, Debug, Deserialize)]
pub struct ClipConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    #[serde(default = "d77")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (SD 1.x, OpenAI CLIP) or `gelu` (SD 2.x, OpenCLIP).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    #[serde(default = "eps5")]
    pub layer_norm_eps: f64,
}

/// A down or up block's flavour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// ResNets only.
    Plain,
    /// ResNets each followed by a spatial transformer with cross-attention.
    CrossAttn,
}

/// One entry of `attention_head_dim`: diffusers' SD configs mean the number of heads here
/// (a naming slip kept for compatibility: SD 1.5 has "8" = 8 heads of 40/80/160 channels).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum PerBlock {
    One(usize),
    Each(Vec<usize>),
}

impl PerBlock {
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            PerBlock::One(v) => Some(*v),
            PerBlock::Each(v) => v.get(i).copied(),
        }
    }
}

/// `unet/config.json`
#[derive(Clone, Debug, Deserialize)]
pub struct UnetConfig {
    #[serde(default = "four")]
    pub in_channels: usize,
    #[serde(default = "four")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    #[serde(default = "two")]
    pub layers_per_block: usize,
    pub cross_attention_dim: usize,
    #[serde(default = "heads8")]
    pub attention_head_dim: PerBlock,
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "eps5")]
    pub norm_eps: f64,
    #[serde(default)]
    pub use_linear_projection: bool,
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    #[serde(default)]
    pub freq_shift: f64,
    #[serde(default = "one")]
    pub transformer_layers_per_block: usize,
    #[serde(default = "sixty_four")]
    pub sample_size: usize,
    /// Not a diffusers key: GEGLU with the tanh approximation of GELU, as candle's UNet has it
    /// (diffusers uses the exact erf GELU, our default). Set only to compare with candle.
    #[serde(skip)]
    pub geglu_tanh: bool,
}

impl UnetConfig {
    pub fn down_kind(&self, i: usize) -> Result<BlockKind> {
        kind(&self.down_block_types, i, "CrossAttnDownBlock2D", "DownBlock2D")
    }
    pub fn up_kind(&self, i: usize) -> Result<BlockKind> {
        kind(&self.up_block_types, i, "CrossAttnUpBlock2D", "UpBlock2D")
    }
    /// Heads of the transformers in down block `i` (the up blocks mirror it).
    pub fn heads(&self, i: usize) -> Result<usize> {
        let src = self.num_attention_heads.as_ref().unwrap_or(&self.attention_head_dim);
        src.get(i).filter(|&h| h > 0).ok_or_else(|| bad("unet config", format!("no attention heads for block {i}")))
    }

    pub fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(bad("unet config", "block_out_channels, down_block_types and up_block_types differ in length"));
        }
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c % self.norm_num_groups != 0 {
                return Err(bad("unet config", format!("{c} channels do not split into {} groups", self.norm_num_groups)));
            }
            self.down_kind(i)?;
            self.up_kind(i)?;
            if c % self.heads(i)? != 0 {
                return Err(bad("unet config", format!("{c} channels do not split into {} heads", self.heads(i)?)));
            }
        }
        if self.transformer_layers_per_block != 1 {
            return Err(Error::UnsupportedModel("transformer_layers_per_block other than 1 (SDXL)".into()));
        }
        Ok(())
    }
}

fn kind(types: &[String], i: usize, cross: &str, plain: &str) -> Result<BlockKind> {
    match types.get(i).map(String::as_str) {
        Some(t) if t == cross => Ok(BlockKind::CrossAttn),
        Some(t) if t == plain => Ok(BlockKind::Plain),
        Some(t) => Err(Error::UnsupportedModel(format!("UNet block type `{t}`"))),
        None => Err(bad("unet config", format!("no block type {i}"))),
    }
}

/// `vae/config.json`
#[derive(Clone, Debug, Deserialize)]
pub struct VaeConfig {
    #[serde(default = "three")]
    pub in_channels: usize,
    #[serde(default = "three")]
    pub out_channels: usize,
    pub block_out_channels: Vec<usize>,
    #[serde(default = "one")]
    pub layers_per_block: usize,
    #[serde(default = "four")]
    pub latent_channels: usize,
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    #[serde(default = "sd_scale")]
    pub scaling_factor: f64,
}

impl VaeConfig {
    pub fn validate(&self) -> Result<()> {
        if self.block_out_channels.is_empty() || self.block_out_channels.iter().any(|c| c % self.norm_num_groups != 0) {
            return Err(bad("vae config", "block_out_channels must be non-empty multiples of norm_num_groups"));
        }
        Ok(())
    }
}

pub fn parse<T: for<'de> Deserialize<'de>>(json: &str, what: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| bad(what, e))
}

fn d77() -> usize {
    77
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn eps5() -> f64 {
    1e-5
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn sixty_four() -> usize {
    64
}
fn heads8() -> PerBlock {
    PerBlock::One(8)
}
fn yes() -> bool {
    true
}
fn sd_scale() -> f64 {
    0.18215
}
