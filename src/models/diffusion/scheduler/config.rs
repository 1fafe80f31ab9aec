//! The scheduler configuration (diffusers' `scheduler/scheduler_config.json`) and the tables every
//! scheduler derives from it: betas, ᾱ (alphas_cumprod), the σ table, and the spaced timesteps.
//!
//! Sources: DDPM (Ho et al. 2020, <https://arxiv.org/abs/2006.11239>) for β/ᾱ; the "scaled_linear"
//! schedule of the original Stable Diffusion (linear in √β); the cosine schedule ("squaredcos_cap_v2",
//! Nichol & Dhariwal 2021, <https://arxiv.org/abs/2102.09672>); σ = √((1−ᾱ)/ᾱ) from Karras et al.
//! 2022 (<https://arxiv.org/abs/2206.00364>); timestep spacings "linspace"/"leading"/"trailing" from
//! Table 2 of Lin et al. 2023 (<https://arxiv.org/abs/2305.08891>). Code paths follow diffusers 0.42
//! (`schedulers/scheduling_*.py`, `__init__` and `set_timesteps`).
//!
//! Precision: diffusers keeps betas, ᾱ and the σ table as f32 torch tensors; we compute in f64 but
//! round to f32 at those same points, so our tables equal diffusers' to the last f32 bit or one ulp
//! (torch's f32 `linspace` may differ from a rounded f64 one by an ulp in a few betas).
//! Transcendentals come from `libm` (bit-identical native and wasm32), never the platform's.

use serde::Deserialize;

use super::SchedulerError;

/// How β grows over the training timesteps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// β linear from `beta_start` to `beta_end`.
    Linear,
    /// √β linear (Stable Diffusion's schedule).
    ScaledLinear,
    /// The cosine ᾱ schedule, β capped at 0.999.
    SquaredcosCapV2,
}

/// What the UNet predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    /// The noise ε (SD 1.x, SD-Turbo, SD 2.x base).
    Epsilon,
    /// v = √ᾱ·ε − √(1−ᾱ)·x₀ (SD 2.x 768-v models).
    VPrediction,
    /// x₀ directly (not supported by our schedulers; rejected at build time).
    Sample,
}

/// How inference timesteps are picked from the training ones (Lin et al. 2023, Table 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestepSpacing {
    /// Evenly from T−1 down to 0 (may be fractional for Euler; rounded for DDIM).
    Linspace,
    /// `i·(T/n) + steps_offset` for i = n−1..0: never reaches T−1 (SD 1.x: 951 … 1 for 20 steps).
    Leading,
    /// `round(T − i·T/n) − 1`: starts at T−1 (SD-Turbo: 999 for one step).
    Trailing,
}

/// diffusers' `scheduler_config.json`. Unknown keys (`_class_name`, `skip_prk_steps`, …) are
/// ignored; absent keys take Stable Diffusion 1.x's values ([`Default`]), except
/// `timestep_spacing`, whose default depends on the scheduler as in diffusers' `from_config`
/// (Euler, Euler a, DPM++: linspace; DDIM, LCM: leading; turbo: always trailing). The trap this
/// avoids: SD 1.5's config predates the key, so diffusers' Euler uses linspace there, DDIM leading.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    /// Explicit betas; when present they replace `beta_start/end/schedule`.
    pub trained_betas: Option<Vec<f64>>,
    /// Added to "leading" timesteps (SD: 1, so 20 steps run 951 … 1 instead of 950 … 0).
    pub steps_offset: usize,
    pub prediction_type: PredictionType,
    /// `None`: the scheduler's own default (see the type's doc).
    pub timestep_spacing: Option<TimestepSpacing>,
    /// DDIM/LCM: ᾱ "before" timestep 0 is 1 (true) or ᾱ₀ (false; SD's configs).
    pub set_alpha_to_one: bool,
    /// DDIM/LCM: clamp the predicted x₀ to ±`clip_sample_range`.
    pub clip_sample: bool,
    pub clip_sample_range: f64,
    /// LCM: the distillation schedule's length (50).
    pub original_inference_steps: usize,
    /// LCM: timestep multiplier in the boundary-condition scalings (10).
    pub timestep_scaling: f64,
    /// Zero-terminal-SNR rescaling: not implemented, rejected if true.
    pub rescale_betas_zero_snr: bool,
}

impl Default for SchedulerConfig {
    /// Stable Diffusion 1.x's `scheduler_config.json` (SD 2.x and SD-Turbo share the betas).
    fn default() -> Self {
        SchedulerConfig {
            num_train_timesteps: 1000,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            trained_betas: None,
            steps_offset: 1,
            prediction_type: PredictionType::Epsilon,
            timestep_spacing: None,
            set_alpha_to_one: false,
            clip_sample: false,
            clip_sample_range: 1.0,
            original_inference_steps: 50,
            timestep_scaling: 10.0,
            rescale_betas_zero_snr: false,
        }
    }
}

impl SchedulerConfig {
    /// Parses a `scheduler_config.json` text and validates it.
    pub fn from_json(text: &str) -> Result<SchedulerConfig, SchedulerError> {
        let cfg: SchedulerConfig = serde_json::from_str(text)
            .map_err(|e| SchedulerError::InvalidConfig(format!("scheduler_config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects values the schedulers cannot use.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        let bad = |m: String| Err(SchedulerError::InvalidConfig(m));
        let t = self.num_train_timesteps;
        if t < 2 {
            return bad(format!("num_train_timesteps must be >= 2, got {t}"));
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != t {
                return bad(format!(
                    "trained_betas has {} values, expected {t}",
                    b.len()
                ));
            }
        }
        let ok_beta = |b: f64| b > 0.0 && b < 1.0;
        if self.trained_betas.is_none() && !(ok_beta(self.beta_start) && ok_beta(self.beta_end)) {
            return bad(format!(
                "beta_start and beta_end must be in (0, 1), got {} and {}",
                self.beta_start, self.beta_end
            ));
        }
        if self.rescale_betas_zero_snr {
            return bad("rescale_betas_zero_snr is not supported".into());
        }
        if self.prediction_type == PredictionType::Sample {
            return bad("prediction_type \"sample\" is not supported".into());
        }
        let o = self.original_inference_steps;
        if o == 0 || o > t {
            return bad(format!(
                "original_inference_steps must be in 1..={t}, got {o}"
            ));
        }
        Ok(())
    }

    /// ᾱ_t for t = 0..T, each value an f32 (as f64), as diffusers computes it: f32 betas,
    /// f32 αs = 1 − β, and `torch.cumprod`, which on the CPU accumulates in f64 and rounds each
    /// output to f32.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let t = self.num_train_timesteps;
        let betas: Vec<f32> = match (&self.trained_betas, self.beta_schedule) {
            (Some(b), _) => b.iter().map(|&x| x as f32).collect(),
            (None, BetaSchedule::Linear) => linspace(self.beta_start, self.beta_end, t)
                .into_iter()
                .map(|x| x as f32)
                .collect(),
            (None, BetaSchedule::ScaledLinear) => {
                linspace(self.beta_start.sqrt(), self.beta_end.sqrt(), t)
                    .into_iter()
                    .map(|x| {
                        let r = x as f32; // torch.linspace(..., dtype=float32), then ** 2 in f32
                        r * r
                    })
                    .collect()
            }
            (None, BetaSchedule::SquaredcosCapV2) => cosine_betas(t),
        };
        let mut acc = 1.0f64;
        betas
            .iter()
            .map(|&b| {
                acc *= (1.0f32 - b) as f64;
                acc as f32 as f64
            })
            .collect()
    }
}

/// diffusers' `betas_for_alpha_bar` (cosine): β_i = min(1 − ᾱ(t₂)/ᾱ(t₁), 0.999) in f64, then f32.
fn cosine_betas(t: usize) -> Vec<f32> {
    let alpha_bar = |x: f64| {
        let c = libm::cos((x + 0.008) / 1.008 * std::f64::consts::PI / 2.0);
        c * c
    };
    (0..t)
        .map(|i| {
            let t1 = i as f64 / t as f64;
            let t2 = (i + 1) as f64 / t as f64;
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// The Karras/EDM σ table, index = training timestep: `((1 − ᾱ)/ᾱ) ** 0.5` computed on f32 tensors
/// in diffusers, so here in f32 too (`sqrt` and `/` are correctly rounded everywhere).
pub fn sigma_table(alphas_cumprod: &[f64]) -> Vec<f32> {
    alphas_cumprod
        .iter()
        .map(|&a| {
            let a = a as f32;
            ((1.0 - a) / a).sqrt()
        })
        .collect()
}

/// `numpy.linspace(start, stop, n)` (endpoint included) bit for bit: `i·step + start`, the last
/// value set to `stop`.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// `numpy.arange(start, stop, step)` for floats: length `ceil((stop − start)/step)`, values
/// `start + i·delta` where numpy's `delta` is `(start + step) − start`, not `step`.
fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    let delta = (start + step) - start;
    (0..len).map(|i| start + i as f64 * delta).collect()
}

/// The spaced inference timesteps of diffusers' Euler/EulerAncestral/DDIM `set_timesteps`, high to
/// low, as f64 values. `round_linspace`: DDIM rounds "linspace" to integers, Euler keeps the
/// fractional f32 values (e.g. 999, 946.4, …). numpy's `round` is half-to-even (937.5 → 938):
/// hence `round_ties_even`, not `round`.
pub fn spaced_timesteps(
    spacing: TimestepSpacing,
    steps: usize,
    train: usize,
    steps_offset: usize,
    round_linspace: bool,
) -> Vec<f64> {
    let mut ts: Vec<f64> = match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, steps)
            .into_iter()
            .map(|x| {
                if round_linspace {
                    x.round_ties_even()
                } else {
                    x as f32 as f64
                }
            })
            .collect(),
        TimestepSpacing::Leading => {
            // Integer ratio, and the offset shifts every timestep (SD: +1). Without the offset
            // the schedule would end at t = 0 and never start at 999.
            let ratio = train / steps;
            (0..steps)
                .map(|i| (i * ratio + steps_offset) as f64)
                .collect()
        }
        TimestepSpacing::Trailing => {
            let ratio = train as f64 / steps as f64;
            let mut v: Vec<f64> = arange(train as f64, 0.0, -ratio)
                .into_iter()
                .map(|x| x.round_ties_even() - 1.0)
                .collect();
            v.reverse(); // undone below: every branch is built low to high
            v
        }
    };
    ts.reverse();
    ts
}

/// `numpy.interp(x, arange(len), table)` with the table's f32 values: clamps outside the range.
pub fn interp_table(x: f64, table: &[f32]) -> f64 {
    let last = table.len().saturating_sub(1);
    if table.is_empty() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return table[0] as f64;
    }
    if x >= last as f64 {
        return table[last] as f64;
    }
    let j = x.floor() as usize;
    let (lo, hi) = (table[j] as f64, table[j + 1] as f64);
    if x == j as f64 {
        return lo;
    }
    (hi - lo) * (x - j as f64) + lo
}

/// diffusers' `_sigma_to_t`: the fractional training timestep whose σ is `sigma`, interpolating
/// linearly in log σ between the two table entries around it (`log_sigmas` ascending).
pub fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = libm::log(sigma.max(1e-10));
    let n = log_sigmas.len();
    // Index of the last entry <= log σ (0 if none), at most n − 2 so that low + 1 exists.
    let low = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - l >= 0.0)
        .unwrap_or(0)
        .min(n.saturating_sub(2));
    let (lo, hi) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((lo - log_sigma) / (lo - hi)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}
