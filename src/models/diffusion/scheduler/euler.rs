//! Euler (deterministic) and Euler ancestral, in the σ ("variance exploding") parametrisation:
//! the latent is x = x₀ + σ·ε, the UNet sees x/√(σ²+1).
//!
//! Euler: Karras et al. 2022, Algorithm 2 with s_churn = 0 (<https://arxiv.org/abs/2206.00364>);
//! Euler ancestral: k-diffusion's `sample_euler_ancestral` (Crowson,
//! <https://github.com/crowsonkb/k-diffusion>). Code paths: diffusers 0.42
//! `EulerDiscreteScheduler` (interpolation "linear", no Karras/exponential/beta sigmas,
//! final sigma "zero", timestep_type "discrete") and `EulerAncestralDiscreteScheduler`.
//! SD-Turbo's one-to-four-step sampling is Euler ancestral with "trailing" spacing (t = 999 first).
//!
//! Traps:
//! * σ has one entry more than the timesteps: the final σ is 0, so the last step lands on x₀.
//! * `init_noise_sigma` is σ_max for linspace/trailing but √(σ_max²+1) for "leading" spacing
//!   (diffusers' rule; leading never starts at t = T−1).
//! * Euler's "linspace" timesteps are fractional (999, 946.44…) and their σ interpolated; the UNet
//!   gets the fractional value.
//! * Ancestral noise is drawn at every step, the last included (×σ_up = 0), as diffusers does.

use super::config::{interp_table, sigma_table, spaced_timesteps, PredictionType, TimestepSpacing};
use super::{check_len, check_step, NoiseSource, Scheduler, SchedulerConfig, SchedulerError};

/// Euler or Euler ancestral over a fixed σ schedule.
#[derive(Clone, Debug)]
pub struct EulerScheduler {
    timesteps: Vec<f64>,
    /// One per timestep plus the final 0, as f32 (diffusers' `self.sigmas`).
    sigmas: Vec<f32>,
    init_noise_sigma: f32,
    prediction: PredictionType,
    ancestral: bool,
    start: usize,
}

impl EulerScheduler {
    /// diffusers' `set_timesteps(steps)` for Euler (`ancestral` false) or Euler a (true).
    pub fn new(
        cfg: &SchedulerConfig,
        spacing: TimestepSpacing,
        steps: usize,
        ancestral: bool,
    ) -> Result<EulerScheduler, SchedulerError> {
        let table = sigma_table(&cfg.alphas_cumprod());
        let timesteps = spaced_timesteps(
            spacing,
            steps,
            cfg.num_train_timesteps,
            cfg.steps_offset,
            false,
        );
        // np.interp gives f64; the concatenated array is cast to f32 (`.astype(np.float32)`).
        let mut sigmas: Vec<f32> = timesteps
            .iter()
            .map(|&t| interp_table(t, &table) as f32)
            .collect();
        sigmas.push(0.0);
        let max = sigmas.iter().copied().fold(0.0f32, f32::max);
        let init_noise_sigma = match spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        };
        Ok(EulerScheduler {
            timesteps,
            sigmas,
            init_noise_sigma,
            prediction: cfg.prediction_type,
            ancestral,
            start: 0,
        })
    }

    pub(super) fn set_start(&mut self, start: usize) {
        self.start = start;
    }

    /// x₀ from the model output at σ (f32 element-wise, diffusers' operation order).
    fn pred_original(&self, m: f32, s: f32, sigma: f32) -> f32 {
        match self.prediction {
            PredictionType::VPrediction => {
                let var = sigma * sigma + 1.0;
                m * (-sigma / var.sqrt()) + s / var
            }
            _ => s - sigma * m,
        }
    }
}

impl Scheduler for EulerScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f32] {
        &self.sigmas
    }

    fn start_index(&self) -> usize {
        self.start
    }

    fn init_noise_sigma(&self) -> f32 {
        self.init_noise_sigma
    }

    fn scale_model_input(
        &self,
        sample: &mut [f32],
        step_index: usize,
    ) -> Result<(), SchedulerError> {
        check_step(step_index, self.timesteps.len())?;
        let sigma = self.sigmas[step_index];
        let denom = (sigma * sigma + 1.0).sqrt();
        for x in sample.iter_mut() {
            *x /= denom;
        }
        Ok(())
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
        let sigma = self.sigmas[step_index];
        let sigma_next = self.sigmas[step_index + 1];
        if !self.ancestral {
            // derivative d = (x − x₀)/σ, x' = x + d·(σ_next − σ).
            let dt = sigma_next - sigma;
            return Ok(model_output
                .iter()
                .zip(sample)
                .map(|(&m, &s)| {
                    let d = (s - self.pred_original(m, s, sigma)) / sigma;
                    s + d * dt
                })
                .collect());
        }
        // Split the move to σ_next into a deterministic part down to σ_down and fresh noise of
        // std σ_up, with σ_down² + σ_up² = σ_next². Scalars in f64 from the f32 σs (diffusers:
        // f32 tensor arithmetic), rounded once.
        let (sf, st) = (sigma as f64, sigma_next as f64);
        let up2 = st * st * (sf * sf - st * st) / (sf * sf);
        let sigma_up = up2.sqrt();
        let sigma_down = (st * st - up2).sqrt();
        let dt = (sigma_down - sf) as f32;
        let sigma_up = sigma_up as f32;
        let eps = noise.randn(sample.len());
        Ok(model_output
            .iter()
            .zip(sample)
            .zip(&eps)
            .map(|((&m, &s), &n)| {
                let d = (s - self.pred_original(m, s, sigma)) / sigma;
                (s + d * dt) + n * sigma_up
            })
            .collect())
    }

    fn x0(&self, model_output: &[f32], step_index: usize, sample: &[f32]) -> Vec<f32> {
        let sigma = self.sigmas[step_index];
        model_output.iter().zip(sample).map(|(&m, &s)| self.pred_original(m, s, sigma)).collect()
    }

    /// x = x₀ + σ·ε at the σ of `step_index` (img2img: the first step that will run).
    fn add_noise(
        &self,
        original: &[f32],
        noise: &[f32],
        step_index: usize,
    ) -> Result<Vec<f32>, SchedulerError> {
        check_step(step_index, self.timesteps.len())?;
        check_len(original.len(), noise.len())?;
        let sigma = self.sigmas[step_index];
        Ok(original
            .iter()
            .zip(noise)
            .map(|(&o, &n)| o + n * sigma)
            .collect())
    }
}
