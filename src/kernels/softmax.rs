//! Softmax over the last dimension (`shaders/softmax.wgsl`): one workgroup per row, max and
//! sum reductions in a fixed order, e^x from `det_exp`. Attention probabilities go through it
//! where the fused `flash_attn` does not apply (CLIP's causal mask, the VAE's 512-wide head).
//!
//! It replaced burn's max_dim/sum_dim around our exp kernel: four dispatches and two
//! intermediate tensors per call became one, and the sum's order is now ours (its CPU twin,
//! [`reference::softmax_rows`](super::reference::softmax_rows), gives the same bits).

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/softmax.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    len: u32,
    one: f32,
    inf: f32,
}

/// y[r, :] = softmax(x[r, :]) for `rows` contiguous rows of `len`; y has x's shape.
pub fn softmax_rows(gpu: &Gpu, x: &CubeTensor, rows: usize, len: usize) -> CubeTensor {
    debug_assert_eq!(x.meta.shape().num_elements(), rows * len, "softmax: x is not [rows, len]");
    let y = gpu.empty_f32(&x.meta.shape().to_vec());
    if rows == 0 || len == 0 {
        // Nothing to do; the shader's `rows − 1` would wrap.
        return y;
    }
    let p = Params { rows: rows as u32, len: len as u32, one: 1.0, inf: f32::INFINITY };
    let (gx, gy) = grid(rows as u32);
    launch(gpu, ShaderKernel::plain("softmax", SRC), (gx, gy, 1), vec![x.handle.clone().binding(), y.handle.clone().binding()], &p);
    y
}
