//! TAESD (Ollin Boer Bohan's tiny autoencoder for Stable Diffusion): a 1.2M-parameter decoder
//! that turns latents into a picture cheaply enough to show one at every step.
//!
//! ```text
//! x = tanh(latents / 3) · 3                                   [B, 4, h, w]
//! x = relu(conv3×3(x))                                         [B, 64, h, w]
//! 3 × { 3 × block; upsample ×2 (nearest); conv3×3, no bias }   [B, 64, 8h, 8w]
//! block; conv3×3 → 3 channels; clamp to [0, 1]                 [B, 3, 8h, 8w]
//! block(x) = relu(conv(relu(conv(relu(conv(x))))) + x)
//! ```
//! Latents are the UNet's (already multiplied by the VAE's scaling factor); the output is an
//! image in [0, 1]. Weights: diffusers' AutoencoderTiny folder (`decoder.layers.N.…`) or the
//! original `taesd_decoder.safetensors` (`N.…`, shifted by one for its leading Clamp layer).

use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::Tensor;

use super::nn::{Conv2d, Loader};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::activation::{act, Act};
use super::store::TensorStore;

/// Blocks per stage and whether an upsample follows (the architecture is fixed).
const STAGES: [(usize, bool); 4] = [(3, true), (3, true), (3, true), (1, false)];

struct Block {
    convs: [Conv2d; 3],
}

impl Block {
    fn forward(&self, gpu: &Gpu, x: Tensor<4>) -> Result<Tensor<4>> {
        let y = relu(self.convs[0].forward(gpu, x.clone())?);
        let y = relu(self.convs[1].forward(gpu, y)?);
        let y = self.convs[2].forward(gpu, y)?;
        Ok(relu(y + x))
    }
}

enum Layer {
    Conv { conv: Conv2d, relu: bool },
    Block(Block),
    Upsample,
}

/// The TAESD decoder.
pub struct Taesd {
    layers: Vec<Layer>,
    pub latent_channels: usize,
    /// Bytes of weights on the GPU.
    pub gpu_bytes: u64,
}

impl Taesd {
    pub async fn load<T: TensorStore>(ld: &Loader<'_, T>) -> Result<Taesd> {
        let (prefix, first) = if ld.contains("decoder.layers.0.weight") {
            ("decoder.layers.", 0)
        } else if ld.contains("1.weight") {
            ("", 1)
        } else {
            return Err(Error::WeightsFormat(
                "not a TAESD decoder: neither decoder.layers.0.weight (diffusers) nor 1.weight (taesd_decoder)".into(),
            ));
        };
        let name = |i: usize, rest: &str| format!("{prefix}{}{rest}", first + i);
        let shape = ld.shape(&name(0, ".weight"))?;
        let (c, latent) = match shape[..] {
            [c, l, 3, 3] => (c, l),
            _ => return Err(Error::WeightsFormat(format!("TAESD first convolution has shape {shape:?}"))),
        };
        let mut layers = vec![Layer::Conv { conv: ld.conv(&name(0, ""), latent, c, 3, 1).await?, relu: true }];
        let mut i = 2; // index 1 is the ReLU
        for (n_blocks, up) in STAGES {
            for _ in 0..n_blocks {
                let p = name(i, ".conv");
                let convs = [
                    ld.conv(&format!("{p}.0"), c, c, 3, 1).await?,
                    ld.conv(&format!("{p}.2"), c, c, 3, 1).await?,
                    ld.conv(&format!("{p}.4"), c, c, 3, 1).await?,
                ];
                layers.push(Layer::Block(Block { convs }));
                i += 1;
            }
            if up {
                layers.push(Layer::Upsample);
                layers.push(Layer::Conv { conv: ld.conv_no_bias(&name(i + 1, ""), c, c, 3, 1).await?, relu: false });
                i += 2;
            } else {
                layers.push(Layer::Conv { conv: ld.conv(&name(i, ""), c, 3, 3, 1).await?, relu: false });
            }
        }
        Ok(Taesd { layers, latent_channels: latent, gpu_bytes: ld.gpu_bytes.get() })
    }

    /// latents [B, 4, h, w] → image [B, 3, 8h, 8w] in [0, 1].
    pub fn forward(&self, gpu: &Gpu, latents: Tensor<4>) -> Result<Tensor<4>> {
        let mut x = act(gpu, latents.div_scalar(3.0), Act::Tanh)?.mul_scalar(3.0);
        for layer in &self.layers {
            x = match layer {
                Layer::Conv { conv, relu: true } => relu(conv.forward(gpu, x)?),
                Layer::Conv { conv, relu: false } => conv.forward(gpu, x)?,
                Layer::Block(b) => b.forward(gpu, x)?,
                Layer::Upsample => {
                    let [_, _, h, w] = x.dims();
                    interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([2 * h, 2 * w]))
                }
            };
        }
        Ok(x.clamp(0.0, 1.0))
    }
}
