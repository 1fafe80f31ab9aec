//! 2-D convolution (`shaders/conv2d.wgsl`) for the diffusion models: NCHW activations, PyTorch
//! weights [co, ci, k, k], a bias, zero padding given as top/left (bottom/right follow from the
//! output size). CPU twin: [`super::reference::conv2d`].
//!
//! Ours rather than burn's `conv2d` so the diffusion models follow the project's kernel
//! conventions (one shader per op family, a CPU twin, a parity test) and so the quantized
//! variant (weights dequantized in registers) can grow from the same loop.

use burn::backend::wgpu::CubeTensor;

use super::{launch, params, ShaderKernel};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/conv2d.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    ci: u32,
    h: u32,
    w: u32,
    co: u32,
    ho: u32,
    wo: u32,
    k: u32,
    stride: u32,
    pad_t: u32,
    pad_l: u32,
    _pad: [u32; 2],
}

/// The geometry of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub ci: usize,
    pub h: usize,
    pub w: usize,
    pub co: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_t: usize,
    pub pad_l: usize,
    pub pad_b: usize,
    pub pad_r: usize,
}

impl ConvShape {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let ho = (self.h + self.pad_t + self.pad_b).saturating_sub(self.k) / self.stride.max(1) + 1;
        let wo = (self.w + self.pad_l + self.pad_r).saturating_sub(self.k) / self.stride.max(1) + 1;
        (ho, wo)
    }
}

/// x [B, ci, h, w], weight [co, ci, k, k], bias [co] → [B, co, ho, wo].
pub fn conv2d(gpu: &Gpu, x: &CubeTensor, weight: &CubeTensor, bias: &CubeTensor, s: ConvShape) -> Result<CubeTensor> {
    let (ho, wo) = s.out_hw();
    if s.k == 0 || s.stride == 0 || s.h + s.pad_t + s.pad_b < s.k || s.w + s.pad_l + s.pad_r < s.k {
        return Err(Error::InvalidOption(format!("convolution {s:?} has no output")));
    }
    let out_bytes = 4 * (s.batch * s.co * ho * wo) as u64;
    let in_bytes = 4 * (s.batch * s.ci * s.h * s.w) as u64;
    if out_bytes.max(in_bytes) > gpu.max_binding {
        return Err(Error::OutOfMemory(format!(
            "convolution of {in_bytes} bytes in, {out_bytes} out exceeds the {}-byte storage binding limit",
            gpu.max_binding
        )));
    }
    let y = gpu.empty_f32(&[s.batch, s.co, ho, wo]);
    let p = Params {
        ci: s.ci as u32,
        h: s.h as u32,
        w: s.w as u32,
        co: s.co as u32,
        ho: ho as u32,
        wo: wo as u32,
        k: s.k as u32,
        stride: s.stride as u32,
        pad_t: s.pad_t as u32,
        pad_l: s.pad_l as u32,
        _pad: [0; 2],
    };
    let gx = ((ho * wo) as u32).div_ceil(64);
    let gy = (s.co as u32).div_ceil(8);
    launch(
        gpu,
        ShaderKernel::plain("conv2d", SRC),
        (gx, gy, s.batch as u32),
        vec![
            x.handle.clone().binding(),
            weight.handle.clone().binding(),
            bias.handle.clone().binding(),
            y.handle.clone().binding(),
            params(gpu, &p).binding(),
        ],
    );
    Ok(y)
}
