// Activation rounding for llama.cpp-compatible numerics ("ggml" mode): X [t, k] f32 in, the
// activations as ggml's CPU backend sees them out, before it multiplies them by quantized
// weights. Mode `{{ mode }}`:
//   q8_1  per 32 values: d = amax/127, q = round-half-even(x · 127/amax), as ggml's AVX
//         quantize_row_q8_1 (and q8_0, which gives the same q and d). Params per chunk:
//         (f16(d), f16(d · Σq)) — both rounded to f16 as ggml stores them.
//   q8_k  per 256 values (quantize_row_q8_K_ref): max = the value of largest |x| (first wins),
//         iscale = −127/max, q = min(127, round-half-even(iscale · x)), d = 1/iscale (f32).
//         Params per 32-chunk: (d, d · Σq over the chunk) — the chunk's two 16-sums (bsums).
//   f16 / bf16  each value rounded to nearest-even f16 / bf16 (ggml's fp32→fp16/bf16), no params.
// Output: Y[0 .. t·k) the values (integers for q8 modes, as f32: the matmul's dot products
// of integers stay exact in f32), then Y[t·k ..) one vec2 of params per (token, 32-chunk).
// f32→f16 conversions are done with integer arithmetic: WGSL leaves their rounding to the
// implementation, and these values must be the same bits on every GPU.

struct Params {
    k: u32,       // values per token (a multiple of 32; of 256 for q8_k)
    t: u32,       // tokens
    items: u32,   // invocations that do work
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Y: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;

// The f16 value nearest to x (ties to even), as an f32. Overflow gives infinity, as F16C does.
fn f16_rne(x: f32) -> f32 {
    let a = abs(x);
    // Infinity with x's sign, built from x's bits (a constant infinity is a WGSL error).
    if (a >= 65520.0) { return bitcast<f32>((bitcast<u32>(x) & 0x80000000u) | 0x7f800000u); }
    if (a < 6.103515625e-05) {
        // f16 subnormals are multiples of 2^-24: scaling by a power of two is exact.
        return round(x * 16777216.0) / 16777216.0;
    }
    let b = bitcast<u32>(x);
    let r = (b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u;
    return bitcast<f32>(r);
}

// The bf16 value nearest to x (ties to even), as an f32 (ggml_compute_fp32_to_bf16).
fn bf16_rne(x: f32) -> f32 {
    let b = bitcast<u32>(x);
    if ((b & 0x7fffffffu) > 0x7f800000u) { return bitcast<f32>((b | 0x00400000u) & 0xffff0000u); }
    return bitcast<f32>((b + 0x7fffu + ((b >> 16u) & 1u)) & 0xffff0000u);
}

fn params_at(item: u32) -> u32 {
    return P.t * P.k + 2u * item;
}

// One 32-value chunk per invocation.
fn act_q8_1(item: u32) {
    let x0 = item * 32u;
    var amax = 0.0;
    for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(X[x0 + j])); }
    let d = amax / 127.0;
    var id = 0.0;
    if (amax != 0.0) { id = 127.0 / amax; }
    var sum = 0.0;
    for (var j = 0u; j < 32u; j++) {
        let q = round(X[x0 + j] * id);
        Y[x0 + j] = q;
        sum += q;
    }
    let o = params_at(item);
    Y[o] = f16_rne(d);
    Y[o + 1u] = f16_rne(d * sum);
}

// One 256-value block per invocation (8 chunks of params).
fn act_q8_k(item: u32) {
    let x0 = item * 256u;
    var amax = 0.0;
    var mx = 0.0;
    for (var j = 0u; j < 256u; j++) {
        let v = X[x0 + j];
        if (abs(v) > amax) { amax = abs(v); mx = v; }
    }
    var iscale = 0.0;
    var d = 0.0;
    if (amax != 0.0) {
        iscale = -127.0 / mx;
        d = 1.0 / iscale;
    }
    for (var c = 0u; c < 8u; c++) {
        var sum = 0.0;
        for (var j = 0u; j < 32u; j++) {
            let q = min(127.0, round(iscale * X[x0 + 32u * c + j]));
            Y[x0 + 32u * c + j] = q;
            sum += q;
        }
        let o = params_at(item * 8u + c);
        Y[o] = d;
        Y[o + 1u] = d * sum;
    }
}

fn act_f16(item: u32) { Y[item] = f16_rne(X[item]); }

fn act_bf16(item: u32) { Y[item] = bf16_rne(X[item]); }

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = gid.x + gid.y * nwg.x * 64u;
    if (item >= P.items) { return; }
    act_{{ mode }}(item);
}
