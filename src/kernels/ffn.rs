//! SwiGLU activation (`shaders/swiglu.wgsl`): y = silu(gate) · up over the fused gate|up output.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/swiglu.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    f: u32,
    t: u32,
    _pad: [u32; 2],
}

/// gu [t, 2f] (gate columns, then up columns) → [t, f].
pub fn swiglu(gpu: &Gpu, gu: &CubeTensor, f: usize, t: usize) -> CubeTensor {
    let y = gpu.empty_f32(&[t, f]);
    let p = Params { f: f as u32, t: t as u32, _pad: [0; 2] };
    let (gx, gy) = grid(((t * f) as u32).div_ceil(64));
    launch(
        gpu,
        ShaderKernel::plain("swiglu", SRC),
        (gx, gy, 1),
        vec![gu.handle.clone().binding(), y.handle.clone().binding()], &p,
    );
    y
}
