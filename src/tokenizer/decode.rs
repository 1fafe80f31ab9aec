//! Ids → bytes/text, as llama.cpp's `token_to_piece` and `detokenize` (including its
//! `clean_spaces` pass for the BPE families that enable it and the SPM leading-space strip).

use super::unicode::char_to_byte;
use super::vocab::{ATTR_BYTE, ATTR_CONTROL, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_USER_DEFINED};
use super::{Kind, Tokenizer};

impl Tokenizer {
    /// The raw bytes token `id` stands for, with control tokens rendered as nothing (llama.cpp
    /// `token_to_piece(id, special = false)`). Unknown ids give nothing.
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        self.token_piece(id, false)
    }

    /// llama.cpp `token_to_piece(id, special)`: BPE tokens are GPT-2-byte-decoded, SPM tokens get
    /// "▁" → " " and `<0xNN>` → the byte; control and unknown tokens render as their text only when
    /// `special`; user-defined tokens always render as their text; unused/undefined ones as nothing.
    pub fn token_piece(&self, id: u32, special: bool) -> Vec<u8> {
        let Some(text) = self.tokens.get(id as usize) else { return Vec::new() };
        let attr = self.attr(id);
        if !special && attr & (ATTR_UNKNOWN | ATTR_CONTROL) != 0 {
            return Vec::new();
        }
        if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        if attr & ATTR_NORMAL != 0 {
            return match self.kind {
                Kind::Spm => text.replace('\u{2581}', " ").into_bytes(),
                Kind::Bpe { .. } => decode_bpe_text(text),
            };
        }
        if attr & ATTR_BYTE != 0 {
            return self.byte_of.get(&id).map(|&b| vec![b]).unwrap_or_default();
        }
        Vec::new()
    }

    /// llama.cpp `llama_detokenize(ids, remove_special, unparse_special)`: the concatenated pieces,
    /// with BOS/EOS dropped when `remove_special` (and the model adds them), the first piece's leading
    /// space stripped for SPM-style vocabularies, and llama.cpp's `clean_spaces` rules.
    pub fn detokenize(&self, ids: &[u32], remove_special: bool, unparse_special: bool) -> Vec<u8> {
        let mut ids = ids;
        let mut remove_space = self.add_space_prefix;
        if remove_special && self.add_bos {
            if let (Some(&first), Some(bos)) = (ids.first(), self.bos) {
                if first == bos {
                    remove_space = false;
                    ids = ids.get(1..).unwrap_or(&[]);
                }
            }
        }
        if remove_special && self.add_eos {
            if let (Some(&last), Some(eos)) = (ids.last(), self.eos) {
                if last == eos {
                    ids = ids.get(..ids.len() - 1).unwrap_or(&[]);
                }
            }
        }
        let mut text = Vec::new();
        for &id in ids {
            let piece = self.token_piece(id, unparse_special);
            let skip = usize::from(remove_space && piece.first() == Some(&b' '));
            text.extend_from_slice(piece.get(skip..).unwrap_or(&[]));
            remove_space = false;
        }
        if self.clean_spaces {
            clean_spaces(&mut text);
        }
        text
    }

    /// Ids → text: `detokenize(ids, false, false)` with invalid UTF-8 replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.detokenize(ids, false, false)).into_owned()
    }
}

/// llama.cpp `llama_decode_text`: every character of a byte-level BPE token is one byte; a character
/// outside the GPT-2 table becomes `[UNK_BYTE_0x<utf8 hex><token text>]`, as llama.cpp writes it.
fn decode_bpe_text(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => {
                out.extend_from_slice(b"[UNK_BYTE_0x");
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                out.extend_from_slice(text.as_bytes());
                out.push(b']');
            }
        }
    }
    out
}

/// llama.cpp's three `clean_spaces` passes over the detokenized bytes.
fn clean_spaces(text: &mut Vec<u8>) {
    // 1: " ?", " !", " .", " ," lose the space
    let src = std::mem::take(text);
    let mut out: Vec<u8> = Vec::with_capacity(src.len());
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && matches!(x, b'?' | b'!' | b'.' | b',') && src.get(i - 1) == Some(&b' ') {
            out.pop();
        }
        out.push(x);
    }
    // 2: " ' " → "'" (the spaces around a lone apostrophe go). llama.cpp overwrites the skipped
    // space with NUL in place, so a following " ' " check sees NUL, not a space: keep that.
    let mut src = std::mem::take(&mut out);
    let mut i = 0usize;
    while let Some(&x) = src.get(i) {
        if i > 0 && x == b'\'' && i + 1 < src.len() && src.get(i - 1) == Some(&b' ') && src.get(i + 1) == Some(&b' ') {
            out.pop();
            if let Some(next) = src.get_mut(i + 1) {
                *next = 0;
            }
            out.push(x);
            i += 2;
            continue;
        }
        out.push(x);
        i += 1;
    }
    // 3: " 's", " 'm", " 're", " 've" lose the space
    let src = std::mem::take(&mut out);
    for (i, &x) in src.iter().enumerate() {
        if i > 0 && x == b'\'' && src.get(i - 1) == Some(&b' ') && i + 1 < src.len() {
            let x1 = src.get(i + 1).copied();
            let x2 = if i + 2 < src.len() { src.get(i + 2).copied() } else { None };
            let drop = match x1 {
                Some(b's' | b'm') => true,
                Some(b't' | b'd') => false,
                _ => matches!((x1, x2), (Some(b'r'), Some(b'e')) | (Some(b'v'), Some(b'e'))),
            };
            if drop {
                out.pop();
            }
        }
        out.push(x);
    }
    *text = out;
}

#[cfg(test)]
mod tests {
    use super::clean_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn clean_spaces_rules() {
        assert_eq!(clean("Hello , world !"), "Hello, world!");
        assert_eq!(clean("rock ' n"), "rock'n");
        assert_eq!(clean("a ' ' b"), "a'' b");
        assert_eq!(clean("it 's we 're I 'd"), "it's we're I 'd");
    }
}
