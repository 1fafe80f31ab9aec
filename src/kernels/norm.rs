//! RMSNorm (`shaders/rms_norm.wgsl`): y = x / sqrt(mean(x²) + eps) · w, one workgroup per row.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/rms_norm.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    dim: u32,
    rows: u32,
    row0: u32,
    w_mod: u32,
    eps: f32,
    _pad: [u32; 3],
}

/// Normalise `rows` rows of `x` (row length `dim`) starting at row `row0`; `w` has `dim`
/// entries. Returns [rows, dim].
pub fn rms_norm(gpu: &Gpu, x: &CubeTensor, w: &CubeTensor, dim: usize, row0: usize, rows: usize, eps: f32) -> CubeTensor {
    let y = gpu.empty_f32(&[rows, dim]);
    let p = Params { dim: dim as u32, rows: rows as u32, row0: row0 as u32, w_mod: dim as u32, eps, _pad: [0; 3] };
    let (gx, gy) = grid(rows as u32);
    launch(
        gpu,
        ShaderKernel::plain("rms_norm", SRC),
        (gx, gy, 1),
        vec![x.handle.clone().binding(), w.handle.clone().binding(), y.handle.clone().binding()], &p,
    );
    y
}
