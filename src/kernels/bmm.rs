//! Batched matmul of two activations (`shaders/bmm.wgsl`): the diffusion models' attention
//! scores q·kᵀ and their product with v, on contiguous [batch, rows, cols] tensors.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/bmm.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    m: u32,
    n: u32,
    k: u32,
    b_trans: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

/// How the second operand is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BLayout {
    /// B [batch, k, n]: C = alpha · A·B.
    Plain,
    /// B [batch, n, k]: C = alpha · A·Bᵀ.
    Transposed,
}

/// a [batch, m, k], b as `layout` says → c [batch, m, n] = alpha · (a · b or a · bᵀ).
/// Inputs must be contiguous (see [`Gpu::from_burn`]).
#[allow(clippy::too_many_arguments)]
pub fn bmm(gpu: &Gpu, a: &CubeTensor, b: &CubeTensor, layout: BLayout, batch: usize, m: usize, n: usize, k: usize, alpha: f32) -> CubeTensor {
    // The shader trusts these (cubecl builds modules without bounds checks).
    debug_assert_eq!(a.meta.shape().num_elements(), batch * m * k, "bmm: a is not [batch, m, k]");
    debug_assert_eq!(b.meta.shape().num_elements(), batch * n * k, "bmm: b is not batch × n × k");
    let c = gpu.empty_f32(&[batch, m, n]);
    let p = Params {
        batch: batch as u32,
        m: m as u32,
        n: n as u32,
        k: k as u32,
        b_trans: (layout == BLayout::Transposed) as u32,
        alpha,
        _pad0: 0,
        _pad1: 0,
    };
    let invocations = (batch * m * n.div_ceil(4)) as u32;
    let (gx, gy) = grid(invocations.div_ceil(64));
    launch(
        gpu,
        ShaderKernel::plain("bmm", SRC),
        (gx, gy, 1),
        vec![a.handle.clone().binding(), b.handle.clone().binding(), c.handle.clone().binding()],
        &p,
    );
    c
}
