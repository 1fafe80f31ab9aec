//! `shaders/conv2d.wgsl` against its CPU twin (`kernels::reference::conv2d`) on shapes that are
//! not multiples of the kernel's 4-pixel × 8-channel tile, with stride 2, 1×1 kernels and the
//! VAE encoder's asymmetric padding; including the shapes where candle 0.9.2's CPU conv2d is
//! wrong (huggingface/candle#3404). f32, Q8_0 and Q4_0 weights (the twin gets the weights after
//! the same quantization round trip), and windows of the weight summed in place (the VAE's
//! channel parts). Tolerance: fidelity.md's f32 bar.

use aigc::gpu::Gpu;
use aigc::kernels::conv::{conv2d, conv2d_into, ConvShape, ConvWeight, ConvWindow};
use aigc::quant::GgmlType;
use aigc::kernels::reference as cpu;

fn rand(n: usize, mut s: u64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn nmse(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    num / den.max(1e-30)
}

#[test]
fn conv2d_matches_reference() {
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    let shape = |batch, ci, h, w, co, k, stride, pad_t, pad_b| ConvShape {
        batch, ci, h, w, co, k, stride, pad_t, pad_l: pad_t, pad_b, pad_r: pad_b,
    };
    let cases = [
        shape(1, 4, 4, 4, 64, 3, 1, 1, 1),    // candle 0.9.2 was wrong here
        shape(1, 32, 32, 32, 32, 3, 1, 1, 1), // and here
        shape(1, 32, 32, 32, 3, 3, 1, 1, 1),
        shape(2, 5, 7, 9, 13, 3, 1, 1, 1),    // odd everything, batch 2
        shape(1, 6, 11, 10, 9, 3, 2, 1, 1),   // UNet downsampler: stride 2, symmetric pad
        shape(1, 6, 10, 10, 9, 3, 2, 0, 1),   // VAE encoder downsampler: pad right/bottom only
        shape(2, 17, 5, 3, 70, 1, 1, 0, 0),   // 1×1 (shortcut, post_quant_conv)
        shape(1, 3, 1, 1, 8, 3, 1, 1, 1),     // one pixel
    ];
    for ty in [GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0] {
        for (n, s) in cases.into_iter().enumerate() {
            let x = rand(s.batch * s.ci * s.h * s.w, 3 * n as u64 + 1);
            let w = rand(s.co * s.ci * s.k * s.k, 3 * n as u64 + 2);
            let b = rand(s.co, 3 * n as u64 + 3);
            let want = cpu::conv2d(&x, &ConvWeight::dequantized(&w, s.co, s.ci, s.k, ty), &b, s);
            let gx = gpu.upload_f32(&x, &[s.batch, s.ci, s.h, s.w]);
            let gw = ConvWeight::upload(&gpu, &w, s.co, s.ci, s.k, ty).expect("weight");
            let gb = gpu.upload_f32(&b, &[s.co]);
            let y = conv2d(&gpu, &gx, &gw, &gb, s).expect("conv2d");
            let got = pollster::block_on(gpu.read_f32(&y)).expect("read");
            assert_eq!(got.len(), want.len(), "{s:?}: output size");
            close(&format!("{} {s:?}", ty.name()), &got, &want);
        }
    }
    // The quantization is real: Q4_0 weights differ from the f32 ones.
    let w = rand(64 * 9, 7);
    let q = ConvWeight::dequantized(&w, 64, 1, 3, GgmlType::Q4_0);
    assert!(nmse(&q, &w) > 1e-4, "Q4_0 round trip changed nothing");
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    let e = nmse(got, want);
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs() - (1e-5 + 1e-4 * b.abs())).fold(f32::MIN, f32::max);
    println!("{what}: NMSE {e:.2e}");
    assert!(e <= 1e-7, "{what}: NMSE {e}");
    assert!(worst <= 0.0, "{what}: an element is off by more than 1e-5 + 1e-4·|ref|");
}

/// A window of the weight (outputs 8..24 of 30, inputs split 5 + 7), the second part added in
/// place, equals the whole convolution's channels 8..24.
#[test]
fn conv2d_windows_accumulate() {
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    let (co, ci, h, w) = (30, 12, 9, 7);
    let s = |ci, co| ConvShape { batch: 2, ci, h, w, co, k: 3, stride: 1, pad_t: 1, pad_l: 1, pad_b: 1, pad_r: 1 };
    let x = rand(2 * ci * h * w, 11);
    let wt = rand(co * ci * 9, 12);
    let b = rand(co, 13);
    let full = cpu::conv2d(&x, &wt, &b, s(ci, co));
    let gw = ConvWeight::upload(&gpu, &wt, co, ci, 3, GgmlType::F32).expect("weight");
    let gb = gpu.upload_f32(&b, &[co]);
    // The input in two channel parts, as the VAE keeps wide activations.
    let part = |c0: usize, n: usize| -> Vec<f32> {
        (0..2).flat_map(|bi| x[(bi * ci + c0) * h * w..(bi * ci + c0 + n) * h * w].to_vec()).collect()
    };
    let (x0, x1) = (gpu.upload_f32(&part(0, 5), &[2, 5, h, w]), gpu.upload_f32(&part(5, 7), &[2, 7, h, w]));
    let y = gpu.empty_f32(&[2, 16, h, w]);
    conv2d_into(&gpu, &x0, &gw, &gb, s(5, 16), ConvWindow { o0: 8, i0: 0 }, &y, false, true).expect("part 0");
    conv2d_into(&gpu, &x1, &gw, &gb, s(7, 16), ConvWindow { o0: 8, i0: 5 }, &y, true, false).expect("part 1");
    let got = pollster::block_on(gpu.read_f32(&y)).expect("read");
    let want: Vec<f32> = (0..2).flat_map(|bi| full[(bi * co + 8) * h * w..(bi * co + 24) * h * w].to_vec()).collect();
    close("window 8..24, inputs 5 + 7", &got, &want);
    let e = conv2d_into(&gpu, &x1, &gw, &gb, s(7, 16), ConvWindow { o0: 20, i0: 5 }, &y, true, false).err().expect("outside");
    assert_eq!(e.name(), "ModelFormatError");
}

#[test]
fn conv2d_refuses_shapes_without_output() {
    let gpu = pollster::block_on(Gpu::get()).expect("gpu");
    let s = ConvShape { batch: 1, ci: 1, h: 2, w: 2, co: 1, k: 3, stride: 1, pad_t: 0, pad_l: 0, pad_b: 0, pad_r: 0 };
    let x = gpu.upload_f32(&[0.0; 4], &[1, 1, 2, 2]);
    let w = ConvWeight::upload(&gpu, &[0.0; 9], 1, 1, 3, GgmlType::F32).expect("weight");
    let b = gpu.upload_f32(&[0.0], &[1]);
    let e = conv2d(&gpu, &x, &w, &b, s).err().expect("no output");
    assert_eq!(e.name(), "InvalidOptionError");
}
