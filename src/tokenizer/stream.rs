//! Incremental detokenization for streaming generation: feed ids one at a time, get back only the
//! newly completed text. A UTF-8 character split across tokens is held back until it is complete;
//! bytes become U+FFFD only once they can no longer start or continue a valid character (the same
//! replacements `String::from_utf8_lossy` makes on the whole byte stream). `finish` flushes.
//!
//! Pieces are llama.cpp `token_to_piece` bytes concatenated as they come (no leading-space strip,
//! no `clean_spaces`: generated tokens continue a prompt).

use super::Tokenizer;

/// Turns a stream of token ids into text without ever splitting a UTF-8 character.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: Vec<u8>,
    render_special: bool,
}

impl StreamDecoder {
    /// A decoder that renders control tokens (e.g. `<|im_end|>`) as nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that renders control tokens as their text when `render_special`.
    pub fn with_special(render_special: bool) -> Self {
        Self { pending: Vec::new(), render_special }
    }

    /// Feed one token; returns the text completed by it (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> String {
        let piece = tokenizer.token_piece(id, self.render_special);
        self.push_bytes(&piece)
    }

    /// Feed raw bytes; returns the text they complete.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0usize;
        while let Some(rest) = self.pending.get(start..) {
            if rest.is_empty() {
                break;
            }
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    if let Some(Ok(s)) = rest.get(..valid).map(std::str::from_utf8) {
                        out.push_str(s);
                    }
                    match e.error_len() {
                        // certainly invalid: replace it and go on
                        Some(n) => {
                            out.push('\u{FFFD}');
                            start += valid + n;
                        }
                        // an incomplete character at the end: wait for more bytes
                        None => {
                            start += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start.min(self.pending.len()));
        out
    }

    /// Bytes held back waiting for the rest of a character.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// End of stream: whatever is held back, with incomplete characters as U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::StreamDecoder;

    #[test]
    fn holds_split_characters() {
        let mut d = StreamDecoder::new();
        let bytes = "a中😀".as_bytes();
        let mut out = String::new();
        for b in bytes {
            out += &d.push_bytes(&[*b]);
        }
        assert_eq!(out, "a中😀");
        assert!(d.pending().is_empty());
        assert_eq!(d.push_bytes(&[0xE4, 0xB8]), "");
        assert_eq!(d.push_bytes(b"A"), "\u{FFFD}A");
        assert_eq!(d.push_bytes(&[0xF0, 0x9F]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
