//! DDIM (η = 0) and LCM: the two schedulers that work directly on ᾱ_t (DDPM parametrisation,
//! x = √ᾱ·x₀ + √(1−ᾱ)·ε, `init_noise_sigma` 1, UNet input unscaled).
//!
//! DDIM: Song et al. 2020, eq. 12 with σ_t = 0 (<https://arxiv.org/abs/2010.02502>); code path
//! diffusers 0.42 `DDIMScheduler.step` with eta 0, no thresholding. LCM: Luo et al. 2023,
//! "Latent Consistency Models" (<https://arxiv.org/abs/2310.04378>), skipping-step schedule and the
//! boundary-condition scalings c_skip, c_out of Song et al. 2023 (consistency models, σ_data 0.5);
//! code path diffusers 0.42 `LCMScheduler` (`set_timesteps` with `strength`, `step`).
//!
//! Traps:
//! * DDIM's previous timestep is `t − T/n` (integer division) whatever the spacing, as diffusers
//!   computes it, not the next entry of the schedule; below 0 it is the "final" ᾱ: 1 if
//!   `set_alpha_to_one`, else ᾱ₀ (SD's configs say false).
//! * "leading" + `steps_offset` 1 puts the first DDIM timestep at 951 for 20 steps, not 999.
//! * LCM picks its n timesteps among the 50 of its distillation schedule (19, 39, …, 999);
//!   img2img shortens that schedule (`strength`) instead of skipping steps, and it adds fresh
//!   noise after every step but the last.
//! * LCM UNets also take a guidance embedding (w = cfg − 1); that is the pipeline's business.

use super::config::{spaced_timesteps, PredictionType, TimestepSpacing};
use super::{check_len, check_step, NoiseSource, Scheduler, SchedulerConfig, SchedulerError};

/// Which update rule: DDIM (η = 0) or LCM.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rule {
    Ddim { step_ratio: i64 },
    Lcm { timestep_scaling: f64 },
}

/// DDIM or LCM over integer training timesteps.
#[derive(Clone, Debug)]
pub struct AlphaScheduler {
    timesteps: Vec<f64>,
    /// ᾱ_t for every training timestep (f32 values).
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    prediction: PredictionType,
    clip: Option<f32>,
    rule: Rule,
    start: usize,
}

impl AlphaScheduler {
    /// diffusers' `DDIMScheduler.set_timesteps(steps)`.
    pub fn ddim(
        cfg: &SchedulerConfig,
        spacing: TimestepSpacing,
        steps: usize,
    ) -> Result<AlphaScheduler, SchedulerError> {
        let train = cfg.num_train_timesteps;
        let timesteps = spaced_timesteps(spacing, steps, train, cfg.steps_offset, true);
        if let Some(&t) = timesteps.iter().find(|&&t| t >= train as f64) {
            return Err(SchedulerError::InvalidSteps(format!(
                "{steps} DDIM steps with steps_offset {} reach timestep {t} >= {train}",
                cfg.steps_offset
            )));
        }
        let step_ratio = (train / steps) as i64;
        Ok(AlphaScheduler::with(
            cfg,
            timesteps,
            Rule::Ddim { step_ratio },
        ))
    }

    /// diffusers' `LCMScheduler.set_timesteps(steps, strength=strength)`.
    pub fn lcm(
        cfg: &SchedulerConfig,
        steps: usize,
        strength: f64,
    ) -> Result<AlphaScheduler, SchedulerError> {
        let orig = cfg.original_inference_steps;
        if steps > orig {
            return Err(SchedulerError::InvalidSteps(format!(
                "LCM steps must be <= original_inference_steps ({orig}), got {steps}"
            )));
        }
        let k = cfg.num_train_timesteps / orig;
        // Python's int(original_steps * strength): f64 product, truncated.
        let kept = (orig as f64 * strength) as usize;
        let origin: Vec<usize> = (1..=kept).rev().map(|i| i * k - 1).collect();
        if origin.len() / steps < 1 {
            return Err(SchedulerError::InvalidStrength(format!(
                "LCM with strength {strength} keeps {kept} of {orig} timesteps, fewer than {steps} steps"
            )));
        }
        // floor(linspace(0, len, n, endpoint=False)) = floor(i·len/n).
        let step = origin.len() as f64 / steps as f64;
        let timesteps = (0..steps)
            .map(|i| origin[((i as f64 * step).floor() as usize).min(origin.len() - 1)] as f64)
            .collect();
        let timestep_scaling = cfg.timestep_scaling;
        Ok(AlphaScheduler::with(
            cfg,
            timesteps,
            Rule::Lcm { timestep_scaling },
        ))
    }

    fn with(cfg: &SchedulerConfig, timesteps: Vec<f64>, rule: Rule) -> AlphaScheduler {
        let alphas_cumprod = cfg.alphas_cumprod();
        let final_alpha_cumprod = if cfg.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod.first().copied().unwrap_or(1.0)
        };
        AlphaScheduler {
            timesteps,
            alphas_cumprod,
            final_alpha_cumprod,
            prediction: cfg.prediction_type,
            clip: cfg.clip_sample.then_some(cfg.clip_sample_range as f32),
            rule,
            start: 0,
        }
    }

    pub(super) fn set_start(&mut self, start: usize) {
        self.start = start;
    }

    /// ᾱ at an integer timestep; the final value below 0.
    fn alpha_at(&self, t: i64) -> f64 {
        if t < 0 {
            return self.final_alpha_cumprod;
        }
        self.alphas_cumprod
            .get(t as usize)
            .copied()
            .unwrap_or(self.final_alpha_cumprod)
    }

    /// (x₀, ε) predictions from the model output at ᾱ_t, f32 element-wise in diffusers' order.
    fn predict(&self, m: f32, x: f32, alpha_t: f64) -> (f32, f32) {
        let sa = alpha_t.sqrt() as f32;
        let sb = (1.0 - alpha_t).sqrt() as f32;
        let (mut x0, eps) = match self.prediction {
            PredictionType::VPrediction => (sa * x - sb * m, sa * m + sb * x),
            _ => ((x - sb * m) / sa, m),
        };
        if let Some(r) = self.clip {
            x0 = x0.clamp(-r, r);
        }
        (x0, eps)
    }
}

impl Scheduler for AlphaScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn start_index(&self) -> usize {
        self.start
    }

    fn init_noise_sigma(&self) -> f32 {
        1.0
    }

    fn scale_model_input(
        &self,
        _sample: &mut [f32],
        step_index: usize,
    ) -> Result<(), SchedulerError> {
        check_step(step_index, self.timesteps.len())
    }

    fn x0(&self, model_output: &[f32], step_index: usize, sample: &[f32]) -> Vec<f32> {
        let alpha_t = self.alpha_at(self.timesteps[step_index] as i64);
        model_output.iter().zip(sample).map(|(&m, &x)| self.predict(m, x, alpha_t).0).collect()
    }

    fn step(
        &mut self,
        model_output: &[f32],
        step_index: usize,
        sample: &[f32],
        noise: &mut dyn NoiseSource,
    ) -> Result<Vec<f32>, SchedulerError> {
        check_step(step_index, self.timesteps.len())?;
        check_len(sample.len(), model_output.len())?;
        let t = self.timesteps[step_index] as i64;
        let alpha_t = self.alpha_at(t);
        match self.rule {
            Rule::Ddim { step_ratio } => {
                let alpha_prev = self.alpha_at(t - step_ratio);
                // η = 0: x' = √ᾱ_prev·x₀ + √(1 − ᾱ_prev)·ε.
                let c_x0 = alpha_prev.sqrt() as f32;
                let c_eps = (1.0 - alpha_prev).sqrt() as f32;
                Ok(model_output
                    .iter()
                    .zip(sample)
                    .map(|(&m, &x)| {
                        let (x0, eps) = self.predict(m, x, alpha_t);
                        c_x0 * x0 + c_eps * eps
                    })
                    .collect())
            }
            Rule::Lcm { timestep_scaling } => {
                let last = step_index + 1 == self.timesteps.len();
                let t_prev = if last {
                    t
                } else {
                    self.timesteps[step_index + 1] as i64
                };
                let alpha_prev = self.alpha_at(t_prev);
                // Boundary condition: c_skip → 1, c_out → 0 as t → 0 (σ_data = 0.5).
                let st = t as f64 * timestep_scaling;
                let c_skip = (0.25 / (st * st + 0.25)) as f32;
                let c_out = (st / (st * st + 0.25).sqrt()) as f32;
                let denoised: Vec<f32> = model_output
                    .iter()
                    .zip(sample)
                    .map(|(&m, &x)| c_out * self.predict(m, x, alpha_t).0 + c_skip * x)
                    .collect();
                if last {
                    return Ok(denoised);
                }
                let eps = noise.randn(sample.len());
                let a = alpha_prev.sqrt() as f32;
                let b = (1.0 - alpha_prev).sqrt() as f32;
                Ok(denoised
                    .iter()
                    .zip(&eps)
                    .map(|(&d, &n)| a * d + b * n)
                    .collect())
            }
        }
    }

    /// x = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε at the timestep of `step_index`.
    fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError> {
        check_step(step_index, self.timesteps.len())?;
        check_len(original.len(), noise.len())?;
        let alpha = self.alpha_at(self.timesteps[step_index] as i64);
        let (a, b) = (alpha.sqrt() as f32, (1.0 - alpha).sqrt() as f32);
        Ok(original
            .iter()
            .zip(noise)
            .map(|(&o, &n)| a * o + b * n)
            .collect())
    }
}
