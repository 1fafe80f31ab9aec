// Quant block decoders, shared by every kernel that reads GGUF weights (prepended to them).
//
// The including kernel declares `W: array<u32>` holding one weight's blocks, rows back to back.
// Blocks are GGUF blocks repacked once at upload so that every field is word-aligned (see
// `kernels::matmul::repack`): Q4_0, Q5_0 and Q8_0 get 2 pad bytes after their leading f16,
// Q6_K gets 2 pad bytes at the end; the other types are already multiples of 4 bytes.
// `dequant32(base, c, v)` writes the 32 values of chunk `c` of the row starting at word `base`
// (elements 32c .. 32c+31) into `v` (`v[j]` = elements 4j .. 4j+3): a whole block for the
// 32-element types, a sub-block of the 256-element K-quants. Each quantized type is decoded once, as integers by `iq_<type>`
// (which the llama.cpp-compatible "q8" matmul uses directly), then scaled: every integer and
// every scale·integer product is exact in f32, so this is ggml's dequantize_row_* to the bit.
// Trap: every decoder is straight-line code writing `v` at constant indices, four lanes at a
// time. SwiftShader (Chromium's WebGPU here; its Subzero JIT does not unroll) keeps an array
// indexed by a loop counter in memory and scatters every store lane by lane, which made these
// decoders most of a GEMV's time there. lavapipe unrolls either form to the same code.
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

// Bytes 0..3 of `q` shifted right by `s`, then masked with `m`: one lane per byte.
fn lanes(q: u32, s: u32, m: u32) -> vec4<u32> {
    return (vec4<u32>(q) >> (vec4<u32>(0u, 8u, 16u, 24u) + s)) & vec4<u32>(m);
}
// Bits b .. b+3 of `h`, each moved to bit 4 (the fifth bit of Q5 elements b .. b+3).
fn bit5(h: u32, b: u32) -> vec4<u32> {
    return ((vec4<u32>(h) >> (vec4<u32>(0u, 1u, 2u, 3u) + b)) & vec4<u32>(1u)) << vec4<u32>(4u);
}
// The 4 signed bytes of `q`.
fn sbytes4(q: u32) -> vec4<f32> {
    return vec4<f32>((vec4<i32>(bitcast<i32>(q)) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
fn f32x4(w: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<f32>(W[w]), bitcast<f32>(W[w + 1u]), bitcast<f32>(W[w + 2u]), bitcast<f32>(W[w + 3u]));
}
fn f16x4(w: u32) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(W[w]), unpack2x16float(W[w + 1u]));
}
fn bf16x2(w: u32) -> vec2<f32> {
    return vec2<f32>(bitcast<f32>(w << 16u), bitcast<f32>(w & 0xffff0000u));
}
fn bf16x4(w: u32) -> vec4<f32> {
    return vec4<f32>(bf16x2(W[w]), bf16x2(W[w + 1u]));
}

fn dq_f32(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) {
    let w = base + c * 32u;
    (*v)[0] = f32x4(w);       (*v)[1] = f32x4(w + 4u);  (*v)[2] = f32x4(w + 8u);  (*v)[3] = f32x4(w + 12u);
    (*v)[4] = f32x4(w + 16u); (*v)[5] = f32x4(w + 20u); (*v)[6] = f32x4(w + 24u); (*v)[7] = f32x4(w + 28u);
}

fn dq_f16(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) {
    let w = base + c * 16u;
    (*v)[0] = f16x4(w);       (*v)[1] = f16x4(w + 2u);  (*v)[2] = f16x4(w + 4u);  (*v)[3] = f16x4(w + 6u);
    (*v)[4] = f16x4(w + 8u);  (*v)[5] = f16x4(w + 10u); (*v)[6] = f16x4(w + 12u); (*v)[7] = f16x4(w + 14u);
}

fn dq_bf16(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) {
    let w = base + c * 16u;
    (*v)[0] = bf16x4(w);      (*v)[1] = bf16x4(w + 2u); (*v)[2] = bf16x4(w + 4u); (*v)[3] = bf16x4(w + 6u);
    (*v)[4] = bf16x4(w + 8u); (*v)[5] = bf16x4(w + 10u); (*v)[6] = bf16x4(w + 12u); (*v)[7] = bf16x4(w + 14u);
}

// Layouts after repacking: Q4_0 [d f16 | pad][qs 16 bytes] = 5 words, low nibbles are
// elements 0-15; Q4_1 [d | m][qs 16] = 5 words; Q5_0 [d | pad][qh u32][qs 16] = 6 words, bit j
// of qh is the fifth bit of element j, bit j+16 that of element j+16; Q5_1 [d | m][qh][qs] = 6
// words; Q8_0 [d | pad][qs 32 × i8] = 9 words; Q4_K [d | dmin][scales 12][qs 128] = 36 words,
// sub-blocks 2p and 2p+1 share 32 quant bytes (low nibbles, then high); Q5_K [d | dmin][scales
// 12][qh 32][qs 128] = 44 words, the fifth bit of element l of sub-block s is bit s of qh[l];
// Q6_K [ql 128][qh 64][scales 16 × i8][d | pad] = 53 words.

// A 16-byte nibble run at word `wq`: low nibbles are elements 0-15, high nibbles 16-31.
fn iq_nibbles(wq: u32, v: ptr<function, array<vec4<f32>, 8>>, off: f32) {
    let q0 = W[wq]; let q1 = W[wq + 1u]; let q2 = W[wq + 2u]; let q3 = W[wq + 3u];
    (*v)[0] = vec4<f32>(lanes(q0, 0u, 0xfu)) - off; (*v)[1] = vec4<f32>(lanes(q1, 0u, 0xfu)) - off;
    (*v)[2] = vec4<f32>(lanes(q2, 0u, 0xfu)) - off; (*v)[3] = vec4<f32>(lanes(q3, 0u, 0xfu)) - off;
    (*v)[4] = vec4<f32>(lanes(q0, 4u, 0xfu)) - off; (*v)[5] = vec4<f32>(lanes(q1, 4u, 0xfu)) - off;
    (*v)[6] = vec4<f32>(lanes(q2, 4u, 0xfu)) - off; (*v)[7] = vec4<f32>(lanes(q3, 4u, 0xfu)) - off;
}

// The same with the fifth bits from `qh` (Q5_0/Q5_1).
fn iq_nibbles5(wq: u32, qh: u32, v: ptr<function, array<vec4<f32>, 8>>, off: f32) {
    let q0 = W[wq]; let q1 = W[wq + 1u]; let q2 = W[wq + 2u]; let q3 = W[wq + 3u];
    (*v)[0] = vec4<f32>(lanes(q0, 0u, 0xfu) | bit5(qh, 0u)) - off;
    (*v)[1] = vec4<f32>(lanes(q1, 0u, 0xfu) | bit5(qh, 4u)) - off;
    (*v)[2] = vec4<f32>(lanes(q2, 0u, 0xfu) | bit5(qh, 8u)) - off;
    (*v)[3] = vec4<f32>(lanes(q3, 0u, 0xfu) | bit5(qh, 12u)) - off;
    (*v)[4] = vec4<f32>(lanes(q0, 4u, 0xfu) | bit5(qh, 16u)) - off;
    (*v)[5] = vec4<f32>(lanes(q1, 4u, 0xfu) | bit5(qh, 20u)) - off;
    (*v)[6] = vec4<f32>(lanes(q2, 4u, 0xfu) | bit5(qh, 24u)) - off;
    (*v)[7] = vec4<f32>(lanes(q3, 4u, 0xfu) | bit5(qh, 28u)) - off;
}

fn iq_q4_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + c * 5u;
    iq_nibbles(wb + 1u, v, 8.0);
    return vec2<f32>(lo16f(W[wb]), 0.0);
}

fn iq_q4_1(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + c * 5u;
    iq_nibbles(wb + 1u, v, 0.0);
    return unpack2x16float(W[wb]);
}

fn iq_q5_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + c * 6u;
    iq_nibbles5(wb + 2u, W[wb + 1u], v, 16.0);
    return vec2<f32>(lo16f(W[wb]), 0.0);
}

fn iq_q5_1(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + c * 6u;
    iq_nibbles5(wb + 2u, W[wb + 1u], v, 0.0);
    return unpack2x16float(W[wb]);
}

fn iq_q8_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + c * 9u;
    (*v)[0] = sbytes4(W[wb + 1u]); (*v)[1] = sbytes4(W[wb + 2u]); (*v)[2] = sbytes4(W[wb + 3u]); (*v)[3] = sbytes4(W[wb + 4u]);
    (*v)[4] = sbytes4(W[wb + 5u]); (*v)[5] = sbytes4(W[wb + 6u]); (*v)[6] = sbytes4(W[wb + 7u]); (*v)[7] = sbytes4(W[wb + 8u]);
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

// Four K-quant elements: scale · (nibble + fifth bit), from quant word `q` (already shifted to
// its nibble) and high-bit word `h` (already shifted to its bit plane; 0 for Q4_K).
fn k4q(q: u32, h: u32, sc: f32) -> vec4<f32> {
    return sc * vec4<f32>(lanes(q, 0u, 0xfu) + (lanes(h, 0u, 1u) << vec4<u32>(4u)));
}

// K-quants: v = sub-block scale · q (integers ≤ 63·31), returns (d, −dmin·min).
fn iq_q4_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 36u;
    let s = c & 7u;
    let q0 = wb + 4u + (s >> 1u) * 8u;
    let sh = (s & 1u) * 4u;
    let sm = k4_scale(wb, s);
    (*v)[0] = k4q(W[q0] >> sh, 0u, sm.x);      (*v)[1] = k4q(W[q0 + 1u] >> sh, 0u, sm.x);
    (*v)[2] = k4q(W[q0 + 2u] >> sh, 0u, sm.x); (*v)[3] = k4q(W[q0 + 3u] >> sh, 0u, sm.x);
    (*v)[4] = k4q(W[q0 + 4u] >> sh, 0u, sm.x); (*v)[5] = k4q(W[q0 + 5u] >> sh, 0u, sm.x);
    (*v)[6] = k4q(W[q0 + 6u] >> sh, 0u, sm.x); (*v)[7] = k4q(W[q0 + 7u] >> sh, 0u, sm.x);
    return vec2<f32>(lo16f(W[wb]), -hi16f(W[wb]) * sm.y);
}

fn iq_q5_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 44u;
    let s = c & 7u;
    let q0 = wb + 12u + (s >> 1u) * 8u;
    let h0 = wb + 4u;
    let sh = (s & 1u) * 4u;
    let sm = k4_scale(wb, s);
    (*v)[0] = k4q(W[q0] >> sh, W[h0] >> s, sm.x);           (*v)[1] = k4q(W[q0 + 1u] >> sh, W[h0 + 1u] >> s, sm.x);
    (*v)[2] = k4q(W[q0 + 2u] >> sh, W[h0 + 2u] >> s, sm.x); (*v)[3] = k4q(W[q0 + 3u] >> sh, W[h0 + 3u] >> s, sm.x);
    (*v)[4] = k4q(W[q0 + 4u] >> sh, W[h0 + 4u] >> s, sm.x); (*v)[5] = k4q(W[q0 + 5u] >> sh, W[h0 + 5u] >> s, sm.x);
    (*v)[6] = k4q(W[q0 + 6u] >> sh, W[h0 + 6u] >> s, sm.x); (*v)[7] = k4q(W[q0 + 7u] >> sh, W[h0 + 7u] >> s, sm.x);
    return vec2<f32>(lo16f(W[wb]), -hi16f(W[wb]) * sm.y);
}

// Four Q6_K elements: scale · (q − 32), q = low nibble | two high bits << 4.
fn q6q(lo: u32, hi: u32, sc: f32) -> vec4<f32> {
    return sc * vec4<f32>(vec4<i32>(lanes(lo, 0u, 0xfu) | (lanes(hi, 0u, 3u) << vec4<u32>(4u))) - vec4<i32>(32));
}

// Q6_K: v = scale of the 16-element group · (q − 32), returns (d, 0).
fn iq_q6_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    let wb = base + (c >> 3u) * 53u;
    let s = c & 7u;
    let h = s >> 2u;
    let g = s & 3u;
    let ql = wb + h * 16u + (g & 1u) * 8u;
    let qh = wb + 32u + h * 8u;
    let ns = (g >> 1u) * 4u;
    let hs = 2u * g;
    let sc0 = sext8(bb(wb, 192u + h * 8u + 2u * g));
    let sc1 = sext8(bb(wb, 192u + h * 8u + 2u * g + 1u));
    (*v)[0] = q6q(W[ql] >> ns, W[qh] >> hs, sc0);           (*v)[1] = q6q(W[ql + 1u] >> ns, W[qh + 1u] >> hs, sc0);
    (*v)[2] = q6q(W[ql + 2u] >> ns, W[qh + 2u] >> hs, sc0); (*v)[3] = q6q(W[ql + 3u] >> ns, W[qh + 3u] >> hs, sc0);
    (*v)[4] = q6q(W[ql + 4u] >> ns, W[qh + 4u] >> hs, sc1); (*v)[5] = q6q(W[ql + 5u] >> ns, W[qh + 5u] >> hs, sc1);
    (*v)[6] = q6q(W[ql + 6u] >> ns, W[qh + 6u] >> hs, sc1); (*v)[7] = q6q(W[ql + 7u] >> ns, W[qh + 7u] >> hs, sc1);
    return vec2<f32>(lo16f(W[wb + 52u]), 0.0);
}

// Values from integers: v·p + m (one rounding of an exact product: ggml's values).
fn scale32(v: ptr<function, array<vec4<f32>, 8>>, p: vec2<f32>) {
    (*v)[0] = (*v)[0] * p.x + p.y; (*v)[1] = (*v)[1] * p.x + p.y; (*v)[2] = (*v)[2] * p.x + p.y; (*v)[3] = (*v)[3] * p.x + p.y;
    (*v)[4] = (*v)[4] * p.x + p.y; (*v)[5] = (*v)[5] * p.x + p.y; (*v)[6] = (*v)[6] * p.x + p.y; (*v)[7] = (*v)[7] * p.x + p.y;
}

fn dq_q4_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q4_0(base, c, v)); }
fn dq_q4_1(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q4_1(base, c, v)); }
fn dq_q5_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q5_0(base, c, v)); }
fn dq_q5_1(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q5_1(base, c, v)); }
fn dq_q8_0(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q8_0(base, c, v)); }
fn dq_q4_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q4_k(base, c, v)); }
fn dq_q5_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q5_k(base, c, v)); }
fn dq_q6_k(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) { scale32(v, iq_q6_k(base, c, v)); }

fn dequant32(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) {
    dq_{{ qtype }}(base, c, v);
}

// Float weights have no integer form; they never run in "q8" mode (their activations are only
// rounded), but the dispatcher below must name a function for every type.
fn iq_f32(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> { dq_f32(base, c, v); return vec2<f32>(1.0, 0.0); }
fn iq_f16(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> { dq_f16(base, c, v); return vec2<f32>(1.0, 0.0); }
fn iq_bf16(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> { dq_bf16(base, c, v); return vec2<f32>(1.0, 0.0); }

fn iquant32(base: u32, c: u32, v: ptr<function, array<vec4<f32>, 8>>) -> vec2<f32> {
    return iq_{{ qtype }}(base, c, v);
}
