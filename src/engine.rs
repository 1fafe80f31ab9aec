//! The engine as a caller sees it: load a GGUF from any [`ByteSource`], then complete plain
//! prompts or chats, or score text (perplexity). The CLI and the browser binding both call
//! exactly this; nothing here knows which one it is running under.

use std::sync::Arc;

use crate::chat::{self, Message};
use crate::error::{Error, Result};
use crate::generate::{self, GenOptions, GenOutput};
use crate::gguf::GgufFile;
use crate::gpu::Gpu;
use crate::kernels::actquant::Numerics;
use crate::models::llama::{KvCache, Model};
use crate::source::{read_gguf_header, ByteSource};
use crate::tokenizer::Tokenizer;

/// Default context when the caller does not choose one (bounded to keep the KV cache small).
pub const DEFAULT_CTX: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Context length to allocate the KV cache for; 0 = min(model's, DEFAULT_CTX).
    pub ctx: usize,
    /// Matmul numerics: exact f32 (default) or llama.cpp's activation rounding.
    pub numerics: Numerics,
}

pub struct Engine {
    pub gpu: Arc<Gpu>,
    pub gguf: GgufFile,
    pub model: Model,
    pub tokenizer: Tokenizer,
    /// The KV cache of the one sequence this engine runs (benchmarks drive it directly).
    pub cache: KvCache,
}

/// Perplexity over consecutive windows (see [`Engine::perplexity`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PerplexityReport {
    pub perplexity: f64,
    pub scored: usize,
    pub argmax: Vec<u32>,
    pub nll: Vec<f64>,
}

impl Engine {
    /// Parse the header, build the tokenizer, upload every weight, compile the pipelines.
    pub async fn load<S: ByteSource>(src: &S, opts: &LoadOptions, progress: &mut dyn FnMut(u64, u64)) -> Result<Engine> {
        let gpu = Gpu::get().await?;
        let gguf = read_gguf_header(src).await?;
        let tokenizer = Tokenizer::from_gguf(&gguf)?;
        let cfg = crate::models::config::Config::from_gguf(&gguf)?;
        if tokenizer.vocab_size() != cfg.vocab {
            return Err(Error::ModelConfig(format!(
                "tokenizer has {} tokens but the embedding has {} rows",
                tokenizer.vocab_size(),
                cfg.vocab
            )));
        }
        let ctx = if opts.ctx == 0 { cfg.ctx_train.min(DEFAULT_CTX) } else { opts.ctx };
        let mut model = Model::load(&gpu, &gguf, src, ctx, progress).await?;
        model.numerics = opts.numerics;
        let mut cache = model.new_cache(&gpu);
        // Compile every pipeline now (a 2-token prefill and a 1-token step use them all), so
        // the first real token does not pay for shader compilation.
        let _ = model.forward(&gpu, &[0, 0], &mut cache, false)?;
        let l = model.forward(&gpu, &[0], &mut cache, false)?;
        gpu.read_f32(&l).await?;
        cache.clear();
        Ok(Engine { gpu, gguf, model, tokenizer, cache })
    }

    /// Tokenize a raw prompt the way llama.cpp does for plain text: BOS per the model's
    /// `add_bos_token`, special-token text not parsed.
    pub fn encode_plain(&self, text: &str) -> Vec<u32> {
        self.tokenizer.encode(text, true, false)
    }

    /// The model's chat template (or `template` if given), rendered for `messages` with the
    /// assistant turn opened.
    pub fn render_chat(&self, messages: &[Message], template: Option<&str>) -> Result<String> {
        let tpl = match template {
            Some(t) => t,
            None => self.gguf.get_str("tokenizer.chat_template")?.ok_or(chat::ChatError::NoTemplate)?,
        };
        let text = |id: Option<u32>| id.and_then(|i| self.tokenizer.token_text(i)).unwrap_or("").to_string();
        let (bos, eos) = (text(self.tokenizer.bos_id()), text(self.tokenizer.eos_id()));
        Ok(chat::render(tpl, messages, true, &bos, &eos)?)
    }

    /// Tokenize a rendered chat: special tokens parsed; BOS only if the template did not
    /// already write it.
    pub fn encode_chat(&self, rendered: &str) -> Vec<u32> {
        let bos_text = self.tokenizer.bos_id().and_then(|id| self.tokenizer.token_text(id));
        let starts_with_bos = bos_text.is_some_and(|b| !b.is_empty() && rendered.starts_with(b));
        self.tokenizer.encode(rendered, !starts_with_bos, true)
    }

    /// Generate from prompt ids, streaming text to `on_text` (return `false` to stop).
    pub async fn generate(&mut self, prompt: &[u32], opts: &GenOptions, on_text: &mut dyn FnMut(&str) -> bool) -> Result<GenOutput> {
        self.gpu.check()?;
        generate::generate(&self.gpu, &self.model, &self.tokenizer, &mut self.cache, prompt, opts, on_text).await
    }

    /// Perplexity of `tokens`: consecutive non-overlapping windows of `window` tokens (a final
    /// shorter window is dropped unless it is the only one), each from an empty cache; every
    /// position after the first of a window is scored (token i predicted from 0..i−1).
    pub async fn perplexity(&mut self, tokens: &[u32], window: usize) -> Result<PerplexityReport> {
        if window < 2 {
            return Err(Error::InvalidOption("perplexity window must be at least 2 tokens".into()));
        }
        if window > self.cache.ctx {
            return Err(Error::ContextOverflow { prompt: window, ctx: self.cache.ctx });
        }
        if tokens.len() < 2 {
            return Err(Error::InvalidOption("text too short to score (fewer than 2 tokens)".into()));
        }
        let mut windows: Vec<&[u32]> = tokens.chunks(window).collect();
        if windows.len() > 1 && windows.last().is_some_and(|w| w.len() < window) {
            windows.pop();
        }
        let vocab = self.model.cfg.vocab;
        let mut report = PerplexityReport { perplexity: 0.0, scored: 0, argmax: Vec::new(), nll: Vec::new() };
        for w in windows {
            self.cache.clear();
            let mut logits = Vec::with_capacity(w.len() * vocab);
            for chunk in w.chunks(generate::PREFILL_CHUNK) {
                let l = self.model.forward(&self.gpu, chunk, &mut self.cache, true)?;
                logits.extend(self.gpu.read_f32(&l).await?);
            }
            for i in 0..w.len() - 1 {
                let row = &logits[i * vocab..(i + 1) * vocab];
                let (best, _) = row.iter().enumerate().fold((0usize, f32::NEG_INFINITY), |a, (j, &v)| if v > a.1 { (j, v) } else { a });
                let m = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
                let lse = m + row.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
                report.nll.push(lse - row[w[i + 1] as usize] as f64);
                report.argmax.push(best as u32);
            }
        }
        self.cache.clear();
        report.scored = report.nll.len();
        report.perplexity = (report.nll.iter().sum::<f64>() / report.scored.max(1) as f64).exp();
        Ok(report)
    }
}
