//! RoPE + head split + KV-cache store (`shaders/rope.wgsl`), and the cos/sin table it reads.
//!
//! The table is built once per model on the CPU in f64: angle(pos, i) = pos · base^(−2i/n_rot)
//! / freq_factor[i] (Llama-3's `rope_freqs.weight` are those factors). Both rotation layouts are
//! supported: [`RopeMode::Adjacent`] for GGUF `llama` (the converter permuted Q/K for it) and
//! [`RopeMode::Neox`] for qwen2/qwen3.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/rope.wgsl");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeMode {
    Adjacent,
    Neox,
}

/// cos/sin pairs [ctx, n_rot/2], interleaved (cos, sin). `freq_scale` is ggml's linear RoPE
/// scaling (1 / factor; 1 = none).
pub fn rope_table(ctx: usize, n_rot: usize, base: f32, freq_scale: f32, freq_factors: Option<&[f32]>) -> Vec<f32> {
    let half = n_rot / 2;
    let mut out = Vec::with_capacity(ctx * half * 2);
    let inv: Vec<f64> = (0..half)
        .map(|i| {
            let f = (base as f64).powf(-2.0 * i as f64 / n_rot as f64);
            let factor = freq_factors.and_then(|ff| ff.get(i)).map_or(1.0, |&x| x as f64);
            f * freq_scale as f64 / factor
        })
        .collect();
    for pos in 0..ctx {
        for &f in &inv {
            let a = pos as f64 * f;
            out.push(a.cos() as f32);
            out.push(a.sin() as f32);
        }
    }
    out
}

/// Shapes of one attention layer.
#[derive(Clone, Copy, Debug)]
pub struct HeadShape {
    pub n_head: usize,
    pub n_kv: usize,
    pub hd: usize,
    pub n_rot: usize,
    pub mode: RopeMode,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t: u32,
    n_head: u32,
    n_kv: u32,
    hd: u32,
    n_rot: u32,
    mode: u32,
    pos0: u32,
    ctx: u32,
    qk_norm: u32,
    eps: f32,
    _pad: [u32; 2],
}

/// Split `qkv` [t, (n_head + 2·n_kv)·hd] into Q [n_head, t, hd] (returned, rotated) and the
/// cache rows `pos0 .. pos0+t` of `k_cache`/`v_cache` [n_kv, ctx, hd] (K rotated, written in
/// place). `qk_norm` = (weights [2·hd]: q then k, eps) applies qwen3's per-head RMSNorm first.
#[allow(clippy::too_many_arguments)]
pub fn rope_store(
    gpu: &Gpu,
    qkv: &CubeTensor,
    table: &CubeTensor,
    qk_norm: Option<(&CubeTensor, f32)>,
    k_cache: &CubeTensor,
    v_cache: &CubeTensor,
    shape: HeadShape,
    t: usize,
    pos0: usize,
    ctx: usize,
) -> CubeTensor {
    let q = gpu.empty_f32(&[shape.n_head, t, shape.hd]);
    let (nw, eps) = match qk_norm {
        Some((w, eps)) => (w.handle.clone(), eps),
        None => (gpu.unused.clone(), 0.0),
    };
    let p = Params {
        t: t as u32,
        n_head: shape.n_head as u32,
        n_kv: shape.n_kv as u32,
        hd: shape.hd as u32,
        n_rot: shape.n_rot as u32,
        mode: if shape.mode == RopeMode::Neox { 2 } else { 0 },
        pos0: pos0 as u32,
        ctx: ctx as u32,
        qk_norm: u32::from(qk_norm.is_some()),
        eps,
        _pad: [0; 2],
    };
    let items = (t * (shape.n_head + 2 * shape.n_kv)) as u32;
    let (gx, gy) = grid(items.div_ceil(64));
    launch(
        gpu,
        ShaderKernel::plain("rope", SRC),
        (gx, gy, 1),
        vec![
            qkv.handle.clone().binding(),
            table.handle.clone().binding(),
            nw.binding(),
            q.handle.clone().binding(),
            k_cache.handle.clone().binding(),
            v_cache.handle.clone().binding(),
        ],
        &p,
    );
    q
}
