// det_exp(x): e^x from IEEE-rounded arithmetic only, the same bits on every driver that
// rounds +, −, × and ÷ as IEEE does (lavapipe and SwiftShader do; WGSL itself allows ÷ and
// sqrt 2.5 ulp, so a GPU may not); see the traps in activation.wgsl. Not a shader of its own:
// the host appends this file to the shaders that need it (activation, softmax, group_norm,
// flash_attn), each of which declares `P.one` (1.0) and `P.inf` (+inf) in its params, for the
// reasons given there.

// e^x, within 2 ulp of the true value: x = n·ln2 + r (Cody–Waite split of ln2, |r| ≤ ln2/2),
// e^r by Cephes' expf polynomial, 2^n by building the exponent bits. Below −86 it is 0 (the
// result would be subnormal), above 88.3 +inf.
fn det_exp(x: f32) -> f32 {
    if (x > 88.3) { return P.inf; }
    if (x < -86.0) { return 0.0; }
    let n = round(x * 1.44269504);
    // n · 0.693359375 is exact (9 + 8 significant bits).
    let r = (x - n * 0.693359375) + n * 2.12194440e-4;
    var p = 1.9875691500e-4;
    p = p * r + 1.3981999507e-3;
    p = p * r + 8.3334519073e-3;
    p = p * r + 4.1665795894e-2;
    p = p * r + 1.6666665459e-1;
    p = p * r + 5.0000001201e-1;
    // e^r = 1 + (r + p·r²), the 1 not a literal (trap 2); 2^n·e^r stays normal.
    let er = (p * (r * r) + r) + P.one;
    return er * bitcast<f32>(u32(i32(n) + 127) << 23u);
}
