{{ enable }}
// Elementwise activations of the diffusion models: Y[i] = act(X[i]), act chosen by `{{ mode }}`
// (exp, sigmoid, silu, quick_gelu, gelu, gelu_tanh, tanh).
//
// Trap: WGSL's exp/tanh builtins are approximations whose bits differ between drivers
// (lavapipe vs SwiftShader, i.e. native vs Chromium here: up to 12 ulp for sigmoid, 1024 for
// tanh), and one flipped bit can move a pixel of the final picture by one level. So everything
// here is built from +, −, ×, ÷ and bit casts, which both drivers round the same (IEEE), and
// results never leave the normal range (drivers may flush subnormals differently).
// Second trap: lavapipe's compiler (Mesa NIR) reassociates float sums that involve a literal:
// (a + b) + 1.0 became a + (b + 1.0), one rounding away from SwiftShader's. So no sum of sums
// has a literal: every 1.0 that is added is `P.one`, a value the compiler cannot see. It also
// folds (x·c₁)·c₂ into x·(c₁c₂), c·(1/y) into c/y, and a − (a − b) into b, so GELU's constants
// come from the host too and the formulas below avoid such cancellations altogether.
// tests/driver_bits.rs runs every mode on both drivers and compares the bits. (Neither driver
// fuses a·b + c into an fma on its own, and explicit fma() was not fused either, so it buys
// nothing; scaling by a power of two is exact in any order.)

struct Params {
    n: u32,
    // 1.0, from the host: see the second trap.
    one: f32,
    // +inf, from the host: Chrome's WGSL compiler (Tint) evaluates bitcast<f32>(0x7f800000u)
    // at compile time and rejects the shader, as inf is not a representable f32 constant there.
    inf: f32,
    _pad1: u32,
    // GELU's constants, from the host for the same reason: (√½, 0.3275911, √(8/π), 0.044715).
    k: vec4<f32>,
    // erfc's leading coefficient 1.061405429, likewise.
    c0: f32,
    _pad2: u32,
    _pad3: u32,
    _pad4: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<{{ act }}>;
@group(0) @binding(1) var<storage, read_write> Y: array<{{ act }}>;
@group(0) @binding(2) var<uniform> P: Params;

// det_exp(x): shaders/det_exp.wgsl, appended to this source by the host.

fn act_exp(x: f32) -> f32 {
    return det_exp(x);
}

fn act_sigmoid(x: f32) -> f32 {
    return 1.0 / (P.one + det_exp(-x));
}

fn act_silu(x: f32) -> f32 {
    return x / (P.one + det_exp(-x));
}

// CLIP ViT-L/14's activation: x · sigmoid(1.702 x).
fn act_quick_gelu(x: f32) -> f32 {
    return x * act_sigmoid(1.702 * x);
}

// tanh(|x|) = 1 − 2 / (e^{2|x|} + 1), odd; absolute error ≤ 2e-7 (relative error grows near 0,
// where the value is tiny anyway).
fn act_tanh(x: f32) -> f32 {
    let a = abs(x);
    var t = 1.0;
    if (a < 9.0) {
        t = P.one - 2.0 / (det_exp(2.0 * a) + P.one);
    }
    return select(t, -t, x < 0.0);
}

// GELU, exact form: x/2 · (1 + erf(x/√2)). With z = |x|/√2, 1 − erf(z) = erfc(z) ≈ w =
// p(t)·e^{−z²} (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7), so 1 + erf(x/√2) is 2 − w for
// x ≥ 0 and w itself for x < 0: no cancellation, and nothing for NIR to simplify (it rewrote
// 1 + (−(1 − w)) as w, one rounding off, when this was written with erf).
fn act_gelu(x: f32) -> f32 {
    let z = abs(x) * P.k.x;
    let t = 1.0 / (P.one + P.k.y * z);
    var p = P.c0 * t - 1.453152027;
    p = p * t + 1.421413741;
    p = p * t - 0.284496736;
    p = p * t + 0.254829592;
    // Past z = 9 (erfc < 5e-37) w is 0: the product would go subnormal, which one driver
    // flushes and the other does not.
    let w = select(p * t * det_exp(-z * z), 0.0, z > 9.0);
    return 0.5 * x * select(2.0 - w, w, x < 0.0);
}

// GELU, tanh form: x/2 · (1 + tanh(u)), u = √(2/π) (x + 0.044715 x³), computed as the equal
// x · sigmoid(2u) (no cancellation for x < 0).
fn act_gelu_tanh(x: f32) -> f32 {
    let u2 = P.k.z * (x + P.k.w * (x * x * x));
    return x / (P.one + det_exp(-u2));
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= P.n) { return; }
    Y[i] = {{ act }}(act_{{ mode }}(f32(X[i])));
}
