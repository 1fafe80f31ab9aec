//! Causal attention over the GPU KV cache with grouped KV heads (`shaders/attention.wgsl`).

use burn::backend::wgpu::CubeTensor;

use super::rope::HeadShape;
use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/attention.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    t: u32,
    n_head: u32,
    n_kv: u32,
    hd: u32,
    ctx: u32,
    pos0: u32,
    scale: f32,
    _pad: u32,
}

/// q [n_head, t, hd], caches [n_kv, ctx, hd] valid up to pos0 + t → out [t, n_head·hd].
/// Token i attends to positions 0 ..= pos0 + i. Scores are scaled by 1/sqrt(hd).
pub fn attention(gpu: &Gpu, q: &CubeTensor, k_cache: &CubeTensor, v_cache: &CubeTensor, shape: HeadShape, t: usize, pos0: usize, ctx: usize) -> CubeTensor {
    let out = gpu.empty_f32(&[t, shape.n_head * shape.hd]);
    let p = Params {
        t: t as u32,
        n_head: shape.n_head as u32,
        n_kv: shape.n_kv as u32,
        hd: shape.hd as u32,
        ctx: ctx as u32,
        pos0: pos0 as u32,
        scale: 1.0 / (shape.hd as f32).sqrt(),
        _pad: 0,
    };
    let (gx, gy) = grid((shape.n_head * t) as u32);
    launch(
        gpu,
        ShaderKernel::plain("attention", SRC),
        (gx, gy, 1),
        vec![
            q.handle.clone().binding(),
            k_cache.handle.clone().binding(),
            v_cache.handle.clone().binding(),
            out.handle.clone().binding(),
        ],
        &p,
    );
    out
}
