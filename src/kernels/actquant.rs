//! llama.cpp-compatible numerics (`shaders/quantize_act.wgsl` + `matmul_q.wgsl`'s "q8" mode).
//!
//! llama.cpp's CPU backend does not multiply f32 activations by quantized weights: before every
//! matmul it rounds the activations to the weight's `vec_dot_type` — 8-bit blocks (Q8_1 for
//! Q4_0…Q8_0, with f16 scale and f16 block sum; Q8_K for the K-quants, f32 scale) or f16/bf16
//! for F16/BF16 weights — and then takes integer dot products scaled per block. On a 135M
//! model that moves logits by ~0.1 and changes the top-1 token at ~3% of positions compared
//! with exact f32 math. [`Numerics::Ggml`] reproduces that arithmetic so aigc's tokens match
//! llama.cpp's; [`Numerics::F32`] (the default) is the exact path.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::quant::GgmlType;

const SRC: &str = include_str!("../../shaders/quantize_act.wgsl");

/// How quantized matmuls treat their activations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Numerics {
    /// f32 activations times the dequantized weights (closest to exact math).
    #[default]
    F32,
    /// Activations rounded as llama.cpp's CPU backend rounds them (same tokens as llama.cpp).
    Ggml,
}

impl Numerics {
    pub fn parse(s: &str) -> Result<Numerics> {
        match s {
            "f32" => Ok(Numerics::F32),
            "ggml" | "llama.cpp" => Ok(Numerics::Ggml),
            other => Err(Error::InvalidOption(format!("numerics '{other}' (expected f32 or ggml)"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Numerics::F32 => "f32",
            Numerics::Ggml => "ggml",
        }
    }
}

/// What ggml turns activations into before multiplying them by a weight of some type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActMode {
    /// 32-value blocks, f16 scale and f16 scaled sum (ggml's Q8_0 and Q8_1 give the same values).
    Q8_1,
    /// 256-value blocks, f32 scale, 16-value sums (ggml's Q8_K).
    Q8K,
    /// Each value rounded to f16.
    F16,
    /// Each value rounded to bf16.
    BF16,
}

impl ActMode {
    /// ggml's `vec_dot_type` for a weight type; `None` for F32 (no rounding).
    pub fn for_weight(ty: GgmlType) -> Option<ActMode> {
        match ty {
            GgmlType::F32 => None,
            GgmlType::F16 => Some(ActMode::F16),
            GgmlType::BF16 => Some(ActMode::BF16),
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => Some(ActMode::Q8_1),
            GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => Some(ActMode::Q8K),
        }
    }

    /// Whether the matmul runs in "q8" mode (integer dot products) on this output.
    pub fn is_integer(self) -> bool {
        matches!(self, ActMode::Q8_1 | ActMode::Q8K)
    }

    fn shader_mode(self) -> &'static str {
        match self {
            ActMode::Q8_1 => "q8_1",
            ActMode::Q8K => "q8_k",
            ActMode::F16 => "f16",
            ActMode::BF16 => "bf16",
        }
    }

    /// Floats of output for `t` tokens of `k` values: the values, then a (scale, sum) pair per
    /// 32-value chunk for the integer modes.
    pub fn out_len(self, t: usize, k: usize) -> usize {
        if self.is_integer() {
            t * k + t * (k / 32) * 2
        } else {
            t * k
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    k: u32,
    t: u32,
    items: u32,
    _pad: u32,
}

/// Round the activations x [t, k] as ggml would for `mode`; see [`ActMode::out_len`] for the
/// layout. `k` must be a multiple of 32 (of 256 for Q8K).
pub fn quantize_act(gpu: &Gpu, x: &CubeTensor, t: usize, k: usize, mode: ActMode) -> CubeTensor {
    let y = gpu.empty_f32(&[mode.out_len(t, k)]);
    let items = match mode {
        ActMode::Q8_1 => t * k / 32,
        ActMode::Q8K => t * k / 256,
        ActMode::F16 | ActMode::BF16 => t * k,
    } as u32;
    let p = Params { k: k as u32, t: t as u32, items, _pad: 0 };
    let (gx, gy) = grid(items.div_ceil(64));
    launch(
        gpu,
        ShaderKernel { variant: mode.shader_mode(), ..ShaderKernel::plain("quantize_act", SRC) },
        (gx, gy, 1),
        vec![x.handle.clone().binding(), y.handle.clone().binding()], &p,
    );
    y
}
