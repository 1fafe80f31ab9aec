//! Normalisations, one workgroup per row or group: RMSNorm (`shaders/rms_norm.wgsl`,
//! y = x / sqrt(mean(x²) + eps) · w) for the LLMs; GroupNorm and LayerNorm
//! (`shaders/group_norm.wgsl`, with an optional fused SiLU) for the diffusion models.

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, Precision, ShaderKernel};
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

const GN_SRC: &str = include_str!("../../shaders/group_norm.wgsl");

/// How [`group_norm`] sees its input: `batch` samples of `channels` channels of `spatial` values
/// each, in `groups` groups per sample; `c0` is the first channel's index into gamma/beta.
/// LayerNorm over rows of C is `{ batch: rows, channels: C, spatial: 1, groups: 1, c0: 0 }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub groups: usize,
    pub c0: usize,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GnParams {
    len: u32,
    spatial: u32,
    cpg: u32,
    groups: u32,
    n_groups: u32,
    c0: u32,
    eps: f32,
    one: f32,
    inf: f32,
    _pad: [u32; 3],
}

/// GroupNorm / LayerNorm (`shaders/group_norm.wgsl`), then SiLU if `silu`: y has x's shape.
/// `x` contiguous as [batch, channels, spatial]; gamma and beta hold at least
/// `c0 + channels` values.
pub fn group_norm(gpu: &Gpu, x: &CubeTensor, gamma: &CubeTensor, beta: &CubeTensor, s: GroupShape, eps: f32, silu: bool) -> CubeTensor {
    // The shader trusts these (cubecl builds modules without bounds checks).
    debug_assert_eq!(x.meta.shape().num_elements(), s.batch * s.channels * s.spatial, "group_norm: x is not {s:?}");
    debug_assert!(s.groups > 0 && s.channels % s.groups == 0, "group_norm: {s:?}");
    debug_assert!(gamma.meta.shape().num_elements() >= s.c0 + s.channels && beta.meta.shape().num_elements() >= s.c0 + s.channels);
    let cpg = s.channels / s.groups.max(1);
    let n_groups = s.batch * s.groups;
    let prec = Precision::of(x);
    let y = gpu.empty(&x.meta.shape().to_vec(), prec);
    if n_groups == 0 || s.spatial == 0 || cpg == 0 {
        // Nothing to normalise; the shader's `n_groups − 1` would wrap.
        return y;
    }
    let p = GnParams {
        len: (cpg * s.spatial) as u32,
        spatial: s.spatial as u32,
        cpg: cpg as u32,
        groups: s.groups as u32,
        n_groups: n_groups as u32,
        c0: s.c0 as u32,
        eps,
        one: 1.0,
        inf: f32::INFINITY,
        _pad: [0; 3],
    };
    let variant = if silu { "silu" } else { "none" };
    let kernel = ShaderKernel { variant, f16: prec.is_f16(), ..ShaderKernel::plain("group_norm", GN_SRC) };
    let (gx, gy) = grid(n_groups as u32);
    let buffers = vec![x.handle.clone().binding(), gamma.handle.clone().binding(), beta.handle.clone().binding(), y.handle.clone().binding()];
    launch(gpu, kernel, (gx, gy, 1), buffers, &p);
    y
}
