//! The generation loop: prefill the prompt in batched chunks, then decode one token at a time
//! from the KV cache, sampling on the CPU from the last position's logits (the only readback of
//! a step). Text is streamed through a UTF-8-safe decoder; stop strings are held back until it
//! is certain they are not starting, so a caller never sees part of one. Cancellation happens
//! between steps (the callback returns `false`), leaving the engine ready for the next call.

use web_time::Instant;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::models::llama::{KvCache, Model};
use crate::sampling::{Sampler, SamplerConfig};
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// Largest batch of prompt tokens run in one forward pass (bounds activation memory and keeps
/// each GPU submission short).
pub const PREFILL_CHUNK: usize = 256;

#[derive(Clone, Debug)]
pub struct GenOptions {
    pub max_tokens: usize,
    pub sampler: SamplerConfig,
    pub stop: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// End-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
    /// The caller cancelled.
    Abort,
}

#[derive(Clone, Debug)]
pub struct GenOutput {
    pub prompt_tokens: Vec<u32>,
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub prefill_secs: f64,
    pub decode_secs: f64,
}

impl GenOutput {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prompt_tokens.len() as f64 / self.prefill_secs.max(1e-9)
    }
    /// Decode rate over the tokens produced after the first (which comes from the prefill).
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.tokens.len().saturating_sub(1) as f64 / self.decode_secs.max(1e-9)
    }
}

/// Run the prompt through the model from an empty cache; returns the last position's logits.
pub async fn prefill(gpu: &Gpu, model: &Model, cache: &mut KvCache, prompt: &[u32]) -> Result<Vec<f32>> {
    cache.clear();
    let mut logits = None;
    for chunk in prompt.chunks(PREFILL_CHUNK) {
        logits = Some(model.forward(gpu, chunk, cache, false)?);
    }
    match logits {
        Some(l) => gpu.read_f32(&l).await,
        None => Err(Error::InvalidOption("empty prompt".into())),
    }
}

/// Generate from `prompt` (token ids), streaming text pieces to `on_text`; it returns `false`
/// to cancel.
pub async fn generate(
    gpu: &Gpu,
    model: &Model,
    tok: &Tokenizer,
    cache: &mut KvCache,
    prompt: &[u32],
    opts: &GenOptions,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<GenOutput> {
    if prompt.is_empty() {
        return Err(Error::InvalidOption("the prompt is empty (no tokens)".into()));
    }
    if prompt.len() >= cache.ctx {
        return Err(Error::ContextOverflow { prompt: prompt.len(), ctx: cache.ctx });
    }
    let mut sampler = Sampler::new(opts.sampler.clone()).map_err(|e| Error::InvalidOption(e.to_string()))?;
    let t0 = Instant::now();
    let mut logits = prefill(gpu, model, cache, prompt).await?;
    let prefill_secs = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut history: Vec<u32> = prompt.to_vec();
    let mut tokens = Vec::new();
    let mut stream = StreamDecoder::new();
    let mut stops = StopScanner::new(&opts.stop);
    let mut finish = FinishReason::Length;
    while tokens.len() < opts.max_tokens {
        let next = sampler.sample(&logits, &history);
        if tok.is_eog(next) {
            finish = FinishReason::Stop;
            break;
        }
        tokens.push(next);
        history.push(next);
        let piece = stream.push(tok, next);
        let (emit, hit) = stops.feed(&piece);
        if !emit.is_empty() && !on_text(&emit) {
            finish = FinishReason::Abort;
            break;
        }
        if hit {
            finish = FinishReason::Stop;
            break;
        }
        if tokens.len() >= opts.max_tokens || cache.pos >= cache.ctx {
            break;
        }
        let l = model.forward(gpu, &[next], cache, false)?;
        logits = gpu.read_f32(&l).await?;
    }
    // Flush what the UTF-8 decoder and the stop scanner held back, unless cancelled or stopped.
    if finish != FinishReason::Abort && !stops.hit {
        let rest = stops.finish(&stream.finish());
        if !rest.is_empty() {
            on_text(&rest);
        }
    }
    Ok(GenOutput {
        prompt_tokens: prompt.to_vec(),
        tokens,
        text: stops.text,
        finish,
        prefill_secs,
        decode_secs: t1.elapsed().as_secs_f64(),
    })
}

/// Finds stop strings in streamed text and holds back any tail that might be the start of one.
struct StopScanner<'a> {
    stops: Vec<&'a str>,
    /// All text accepted so far (truncated at a stop string when one is hit).
    text: String,
    emitted: usize,
    hit: bool,
}

impl<'a> StopScanner<'a> {
    fn new(stops: &'a [String]) -> Self {
        StopScanner { stops: stops.iter().map(String::as_str).filter(|s| !s.is_empty()).collect(), text: String::new(), emitted: 0, hit: false }
    }

    /// Add a piece; returns (text now safe to show, whether a stop string was hit).
    fn feed(&mut self, piece: &str) -> (String, bool) {
        if self.hit {
            return (String::new(), true);
        }
        let search_from = self.emitted;
        self.text.push_str(piece);
        let found = self.stops.iter().filter_map(|s| self.text[search_from..].find(s).map(|i| search_from + i)).min();
        if let Some(at) = found {
            self.text.truncate(at);
            self.hit = true;
            let out = self.text[self.emitted..].to_string();
            self.emitted = self.text.len();
            return (out, true);
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        let mut safe = self.text.len();
        for (i, _) in self.text[self.emitted..].char_indices().map(|(i, c)| (self.emitted + i, c)) {
            let tail = &self.text[i..];
            if self.stops.iter().any(|s| s.len() > tail.len() && s.starts_with(tail)) {
                safe = i;
                break;
            }
        }
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// End of stream: whatever was held back is text after all.
    fn finish(&mut self, tail: &str) -> String {
        if self.hit {
            return String::new();
        }
        let (mut out, _) = self.feed(tail);
        if !self.hit {
            out.push_str(&self.text[self.emitted..]);
            self.emitted = self.text.len();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::StopScanner;

    #[test]
    fn stop_strings_are_never_streamed() {
        let stops = vec!["\nUser:".to_string()];
        let mut s = StopScanner::new(&stops);
        let mut shown = String::new();
        for piece in ["Hello", " there", "\n", "Us", "er:", " more"] {
            let (out, hit) = s.feed(piece);
            shown.push_str(&out);
            if hit {
                break;
            }
        }
        assert_eq!(shown, "Hello there");
        assert_eq!(s.text, "Hello there");
    }

    #[test]
    fn held_back_prefix_is_released_when_it_is_not_a_stop() {
        let stops = vec!["STOP".to_string()];
        let mut s = StopScanner::new(&stops);
        let (a, _) = s.feed("abc ST");
        assert_eq!(a, "abc ");
        let (b, _) = s.feed("ART");
        assert_eq!(b, "START");
        let (c, hit) = s.feed(" ST");
        assert_eq!(c, " ");
        assert!(!hit);
        assert_eq!(s.finish(""), "ST");
    }
}
