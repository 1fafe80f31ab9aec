//! Fused attention for the diffusion models (`shaders/flash_attn.wgsl`): softmax(α·q·kᵀ)·v
//! with an online softmax, one invocation per query row, never materialising the scores.
//! Used for every unmasked attention whose head size is a multiple of 4 up to 160 (UNet self-
//! and cross-attention: SD 1.x heads are 40 to 160 wide, SD 2.x 64); CLIP's causal attention
//! and the VAE's one 512-wide head keep bmm + softmax (an invocation holding 2 × 512 floats
//! would spill on a GPU, and at 512² the VAE's 4,096 rows would be only 64 workgroups).

use burn::backend::wgpu::CubeTensor;

use super::{grid, launch, Precision, ShaderKernel};
use crate::gpu::Gpu;

const SRC: &str = include_str!("../../shaders/flash_attn.wgsl");

/// Multiply-adds per dispatch (q·k and p·v both counted), roughly: a large attention is split
/// into dispatches of whole workgroups of query rows so none runs for long on a CPU-emulated
/// adapter (browsers reset a GPU that hangs ~2 s), while a real GPU still gets thousands of
/// invocations per dispatch (SD 1.5 at 512²: 3,264 rows of 4,096 keys × 40, 20 dispatches).
const WORK_PER_DISPATCH: usize = 1 << 30;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    tq: u32,
    tk: u32,
    rows: u32,
    row0: u32,
    alpha: f32,
    one: f32,
    inf: f32,
    _pad0: u32,
}

/// Whether [`flash_attn`] takes this head size.
pub fn supports(d: usize) -> bool {
    d > 0 && d % 4 == 0 && d <= 160
}

/// q [batch, tq, d], k and v [batch, tk, d] (contiguous) → o [batch, tq, d] =
/// softmax(alpha · q·kᵀ) · v per batch entry. `d` must pass [`supports`].
#[allow(clippy::too_many_arguments)]
pub fn flash_attn(gpu: &Gpu, q: &CubeTensor, k: &CubeTensor, v: &CubeTensor, batch: usize, tq: usize, tk: usize, d: usize, alpha: f32) -> CubeTensor {
    // The shader trusts these (cubecl builds modules without bounds checks).
    debug_assert!(supports(d), "flash_attn: head size {d}");
    debug_assert_eq!(q.meta.shape().num_elements(), batch * tq * d, "flash_attn: q is not [batch, tq, d]");
    debug_assert_eq!(k.meta.shape().num_elements(), batch * tk * d, "flash_attn: k is not [batch, tk, d]");
    debug_assert_eq!(v.meta.shape().num_elements(), batch * tk * d, "flash_attn: v is not [batch, tk, d]");
    // q, k, v and o are stored alike (f32 or f16).
    let prec = Precision::of(q);
    debug_assert!(Precision::of(k) == prec && Precision::of(v) == prec, "flash_attn: mixed precisions");
    let o = gpu.empty(&[batch, tq, d], prec);
    let total = batch * tq;
    let per = ((WORK_PER_DISPATCH / (2 * tk * d).max(1)) / 64 * 64).max(64);
    let kernel = ShaderKernel { rows: (d / 4) as u32, f16: prec.is_f16(), ..ShaderKernel::plain("flash_attn", SRC) };
    let mut row0 = 0;
    while row0 < total {
        let rows = per.min(total - row0);
        let p = Params {
            tq: tq as u32,
            tk: tk as u32,
            rows: rows as u32,
            row0: row0 as u32,
            alpha,
            one: 1.0,
            inf: f32::INFINITY,
            _pad0: 0,
        };
        let (gx, gy) = grid((rows as u32).div_ceil(64));
        let buffers = vec![q.handle.clone().binding(), k.handle.clone().binding(), v.handle.clone().binding(), o.handle.clone().binding()];
        launch(gpu, kernel.clone(), (gx, gy, 1), buffers, &p);
        row0 += rows;
    }
    o
}

/// The shader's unrolled code for a head of `d4` vec4s.
pub(crate) fn shader_code(d4: u32, f16: bool) -> Vec<(&'static str, String)> {
    let act = if f16 { "f16" } else { "f32" };
    let each = |f: &dyn Fn(u32) -> String| (0..d4).map(f).collect::<Vec<_>>().join("\n");
    vec![
        ("d4", d4.to_string()),
        ("q_decl", each(&|c| format!("    let q{c} = vec4<f32>(Q[qo + {c}u]);"))),
        ("a_decl", each(&|c| format!("    var a{c} = vec4<f32>(0.0);"))),
        ("dot", each(&|c| format!("        s = add4(s, q{c} * vec4<f32>(K[kj + {c}u]));"))),
        ("rescale", each(&|c| format!("            a{c} = a{c} * c;"))),
        ("accum", each(&|c| format!("        a{c} = a{c} + p * vec4<f32>(V[kj + {c}u]);"))),
        ("store", each(&|c| format!("    O[qo + {c}u] = vec4<{act}>(a{c} / l);"))),
    ]
}
