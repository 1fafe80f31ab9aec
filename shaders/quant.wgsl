// Quant block decoders, shared by every kernel that reads GGUF weights (prepended to them).
//
// The including kernel declares `W: array<u32>` holding one weight's blocks, rows back to back.
// Blocks are GGUF blocks repacked once at upload so that every field is word-aligned (see
// `kernels::matmul::repack`): Q4_0, Q5_0 and Q8_0 get 2 pad bytes after their leading f16,
// Q6_K gets 2 pad bytes at the end; the other types are already multiples of 4 bytes.
// `dequant32(base, c, v)` writes the 32 values of chunk `c` of the row starting at word `base`
// (elements 32c .. 32c+31) into `v`: a whole block for the 32-element types, a sub-block of the
// 256-element K-quants. Each quantized type is decoded once, as integers by `iq_<type>`
// (which the llama.cpp-compatible "q8" matmul uses directly), then scaled: every integer and
// every scale·integer product is exact in f32, so this is ggml's dequantize_row_* to the bit.
// Loops have constant bounds so the compiler can keep `v` in registers.
//
// `iquant32(base, c, v)` writes chunk `c` as integers (in f32: every dot product of them with
// 8-bit activations stays below 2^24, so it is exact in any order) and returns (p, m) such that
// the chunk's values are p·v + m, and ggml's vec_dot of the chunk with an activation chunk of
// params (a, s) is p·a·Σ v·q + m·s: the block scale times the activation scale times the
// integer sum, plus the weight's min times the activation block sum (Q4_1/Q5_1) or the
// K-quants' min term.

// Byte `i` (0-based) of the block starting at word `wb`.
fn bb(wb: u32, i: u32) -> u32 {
    return (W[wb + (i >> 2u)] >> ((i & 3u) * 8u)) & 0xffu;
}

fn lo16f(w: u32) -> f32 { return unpack2x16float(w).x; }
fn hi16f(w: u32) -> f32 { return unpack2x16float(w).y; }
fn sext8(b: u32) -> f32 { return f32((i32(b) << 24u) >> 24u); }

fn dq_f32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 32u;
    for (var i = 0u; i < 32u; i++) { (*v)[i] = bitcast<f32>(W[w0 + i]); }
}

fn dq_f16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 16u;
    for (var j = 0u; j < 16u; j++) {
        let p = unpack2x16float(W[w0 + j]);
        (*v)[2u * j] = p.x;
        (*v)[2u * j + 1u] = p.y;
    }
}

fn dq_bf16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    let w0 = base + c * 16u;
    for (var j = 0u; j < 16u; j++) {
        let w = W[w0 + j];
        (*v)[2u * j] = bitcast<f32>(w << 16u);
        (*v)[2u * j + 1u] = bitcast<f32>(w & 0xffff0000u);
    }
}

// Layouts after repacking: Q4_0 [d f16 | pad][qs 16 bytes] = 5 words, low nibbles are
// elements 0-15; Q4_1 [d | m][qs 16] = 5 words; Q5_0 [d | pad][qh u32][qs 16] = 6 words, bit j
// of qh is the fifth bit of element j, bit j+16 that of element j+16; Q5_1 [d | m][qh][qs] = 6
// words; Q8_0 [d | pad][qs 32 × i8] = 9 words; Q4_K [d | dmin][scales 12][qs 128] = 36 words,
// sub-blocks 2p and 2p+1 share 32 quant bytes (low nibbles, then high); Q5_K [d | dmin][scales
// 12][qh 32][qs 128] = 44 words, the fifth bit of element l of sub-block s is bit s of qh[l];
// Q6_K [ql 128][qh 64][scales 16 × i8][d | pad] = 53 words.

// Low and high nibbles of word `q` of a 16-byte nibble run, as element pairs (j, j+16).
fn iq_nibbles(wq: u32, v: ptr<function, array<f32, 32>>, off: f32) {
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wq + j4];
        for (var b = 0u; b < 4u; b++) {
            let x = (q >> (8u * b)) & 0xffu;
            (*v)[4u * j4 + b] = f32(x & 0xfu) - off;
            (*v)[4u * j4 + b + 16u] = f32(x >> 4u) - off;
        }
    }
}

// The same with the fifth bits from `qh` (Q5_0/Q5_1).
fn iq_nibbles5(wq: u32, qh: u32, v: ptr<function, array<f32, 32>>, off: f32) {
    for (var j4 = 0u; j4 < 4u; j4++) {
        let q = W[wq + j4];
        for (var b = 0u; b < 4u; b++) {
            let j = 4u * j4 + b;
            let x = (q >> (8u * b)) & 0xffu;
            (*v)[j] = f32((x & 0xfu) | (((qh >> j) << 4u) & 0x10u)) - off;
            (*v)[j + 16u] = f32((x >> 4u) | ((qh >> (j + 12u)) & 0x10u)) - off;
        }
    }
}

fn iq_q4_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + c * 5u;
    iq_nibbles(wb + 1u, v, 8.0);
    return vec2<f32>(lo16f(W[wb]), 0.0);
}

fn iq_q4_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + c * 5u;
    iq_nibbles(wb + 1u, v, 0.0);
    return unpack2x16float(W[wb]);
}

fn iq_q5_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + c * 6u;
    iq_nibbles5(wb + 2u, W[wb + 1u], v, 16.0);
    return vec2<f32>(lo16f(W[wb]), 0.0);
}

fn iq_q5_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + c * 6u;
    iq_nibbles5(wb + 2u, W[wb + 1u], v, 0.0);
    return unpack2x16float(W[wb]);
}

fn iq_q8_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + c * 9u;
    for (var j4 = 0u; j4 < 8u; j4++) {
        let q = W[wb + 1u + j4];
        for (var b = 0u; b < 4u; b++) { (*v)[4u * j4 + b] = sext8((q >> (8u * b)) & 0xffu); }
    }
    return vec2<f32>(lo16f(W[wb]), 0.0);
}

// K-quants: 12 scale bytes pack 8 six-bit scales and 8 six-bit mins (ggml get_scale_min_k4).
fn k4_scale(wb: u32, j: u32) -> vec2<f32> {
    // scales start at byte 4 of the block
    if (j < 4u) {
        return vec2<f32>(f32(bb(wb, 4u + j) & 63u), f32(bb(wb, 8u + j) & 63u));
    }
    let sc = (bb(wb, 8u + j) & 0xfu) | ((bb(wb, j) >> 6u) << 4u);
    let mn = (bb(wb, 8u + j) >> 4u) | ((bb(wb, 4u + j) >> 6u) << 4u);
    return vec2<f32>(f32(sc), f32(mn));
}

// K-quants: v = sub-block scale · q (integers ≤ 63·31), returns (d, −dmin·min).
fn iq_k4(wb: u32, s: u32, q0: u32, qh0: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let sm = k4_scale(wb, s);
    let shift = (s & 1u) * 4u;
    for (var j4 = 0u; j4 < 8u; j4++) {
        let q = W[q0 + j4] >> shift;
        var h = 0u;
        if (qh0 != 0u) { h = W[qh0 + j4] >> s; }
        for (var b = 0u; b < 4u; b++) {
            let hi = ((h >> (8u * b)) & 1u) << 4u;
            (*v)[4u * j4 + b] = sm.x * f32(((q >> (8u * b)) & 0xfu) + hi);
        }
    }
    return vec2<f32>(lo16f(W[wb]), -hi16f(W[wb]) * sm.y);
}

fn iq_q4_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 36u;
    let s = c & 7u;
    return iq_k4(wb, s, wb + 4u + (s >> 1u) * 8u, 0u, v);
}

fn iq_q5_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 44u;
    let s = c & 7u;
    return iq_k4(wb, s, wb + 12u + (s >> 1u) * 8u, wb + 4u, v);
}

// Q6_K: v = scale of the 16-element group · (q − 32), returns (d, 0).
fn iq_q6_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 53u;
    let s = c & 7u;
    let h = s >> 2u;
    let g = s & 3u;
    let ql = wb + h * 16u + (g & 1u) * 8u;
    let qh = wb + 32u + h * 8u;
    let nshift = (g >> 1u) * 4u;
    let sc0 = sext8(bb(wb, 192u + h * 8u + 2u * g));
    let sc1 = sext8(bb(wb, 192u + h * 8u + 2u * g + 1u));
    for (var j4 = 0u; j4 < 8u; j4++) {
        let lo = W[ql + j4] >> nshift;
        let hi = W[qh + j4] >> (2u * g);
        var sc = sc0;
        if (j4 >= 4u) { sc = sc1; }
        for (var b = 0u; b < 4u; b++) {
            let q = i32(((lo >> (8u * b)) & 0xfu) | (((hi >> (8u * b)) & 3u) << 4u)) - 32;
            (*v)[4u * j4 + b] = sc * f32(q);
        }
    }
    return vec2<f32>(lo16f(W[wb + 52u]), 0.0);
}

// Values from integers: v·p + m (one rounding of an exact product: ggml's values).
fn scale32(v: ptr<function, array<f32, 32>>, p: vec2<f32>) {
    for (var i = 0u; i < 32u; i++) { (*v)[i] = (*v)[i] * p.x + p.y; }
}

fn dq_q4_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q4_0(base, c, v)); }
fn dq_q4_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q4_1(base, c, v)); }
fn dq_q5_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q5_0(base, c, v)); }
fn dq_q5_1(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q5_1(base, c, v)); }
fn dq_q8_0(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q8_0(base, c, v)); }
fn dq_q4_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q4_k(base, c, v)); }
fn dq_q5_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q5_k(base, c, v)); }
fn dq_q6_k(base: u32, c: u32, v: ptr<function, array<f32, 32>>) { scale32(v, iq_q6_k(base, c, v)); }

fn dequant32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) {
    dq_{{ qtype }}(base, c, v);
}

// Float weights have no integer form; they never run in "q8" mode (their activations are only
// rounded), but the dispatcher below must name a function for every type.
fn iq_f32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> { dq_f32(base, c, v); return vec2<f32>(1.0, 0.0); }
fn iq_f16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> { dq_f16(base, c, v); return vec2<f32>(1.0, 0.0); }
fn iq_bf16(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> { dq_bf16(base, c, v); return vec2<f32>(1.0, 0.0); }

fn iquant32(base: u32, c: u32, v: ptr<function, array<f32, 32>>) -> vec2<f32> {
    return iq_{{ qtype }}(base, c, v);
}
