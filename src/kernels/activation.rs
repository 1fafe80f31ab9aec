//! Elementwise activations of the diffusion models (`shaders/activation.wgsl`): exp, sigmoid,
//! SiLU, quick-GELU, GELU (erf and tanh forms), tanh. Softmax is in [`super::softmax`].
//!
//! Why not burn's own activations: they use WGSL's exp/tanh builtins, whose bits differ between
//! drivers (lavapipe vs Chromium's SwiftShader: up to 12 ulp for sigmoid), which was enough to
//! move single pixels of a picture between `aigc image` and the browser. This kernel uses only
//! IEEE-rounded arithmetic, so the same weights and seed give the same bits on both. burn's
//! add/mul/div/sqrt, matmul and reductions were measured to agree bit for bit already.

use burn::backend::wgpu::CubeTensor;
use burn::tensor::Tensor;

use super::{grid, launch, Precision, ShaderKernel};
use crate::error::Result;
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/activation.wgsl");

/// Which activation; the shader's `act_{mode}` function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Exp,
    Sigmoid,
    Silu,
    /// x · sigmoid(1.702 x) (CLIP ViT-L/14).
    QuickGelu,
    /// x/2 · (1 + erf(x/√2)).
    Gelu,
    /// x/2 · (1 + tanh(√(2/π)(x + 0.044715 x³))).
    GeluTanh,
    Tanh,
}

impl Act {
    pub const ALL: [Act; 7] = [Act::Exp, Act::Sigmoid, Act::Silu, Act::QuickGelu, Act::Gelu, Act::GeluTanh, Act::Tanh];

    fn mode(self) -> &'static str {
        match self {
            Act::Exp => "exp",
            Act::Sigmoid => "sigmoid",
            Act::Silu => "silu",
            Act::QuickGelu => "quick_gelu",
            Act::Gelu => "gelu",
            Act::GeluTanh => "gelu_tanh",
            Act::Tanh => "tanh",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    one: f32,
    inf: f32,
    _pad: u32,
    /// GELU's constants (the shader says why they are not literals there).
    k: [f32; 4],
    c0: f32,
    _pad2: [u32; 3],
}

/// y = act(x) elementwise; `x` contiguous, `y` of its shape.
pub fn activation(gpu: &Gpu, x: &CubeTensor, act: Act) -> CubeTensor {
    let shape = x.meta.shape().to_vec();
    let n = x.meta.shape().num_elements();
    let prec = Precision::of(x);
    let y = gpu.empty(&shape, prec);
    let (gx, gy) = grid((n as u32).div_ceil(64));
    let kernel = ShaderKernel { variant: act.mode(), f16: prec.is_f16(), ..ShaderKernel::plain("activation", SRC) };
    let k = [std::f32::consts::FRAC_1_SQRT_2, 0.3275911, (8.0 / std::f64::consts::PI).sqrt() as f32, 0.044715];
    let p = Params { n: n as u32, one: 1.0, inf: f32::INFINITY, _pad: 0, k, c0: 1.061405429, _pad2: [0; 3] };
    launch(gpu, kernel, (gx, gy, 1), vec![x.handle.clone().binding(), y.handle.clone().binding()], &p);
    y
}

/// [`activation`] on a burn tensor.
pub fn act<const D: usize>(gpu: &Gpu, x: Tensor<D>, a: Act) -> Result<Tensor<D>> {
    let x = Gpu::from_burn(x)?;
    Ok(Gpu::to_burn(activation(gpu, &x, a)))
}
