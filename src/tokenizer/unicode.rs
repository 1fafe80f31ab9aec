//! Unicode helpers shared by the tokenizers: llama.cpp's code-point classes (from the generated
//! `unicode_table.rs`), the GPT-2 byte↔unicode mapping, and small UTF-8 utilities.

use std::sync::OnceLock;

use super::unicode_table::{RANGES, WHITESPACE};

/// llama.cpp's `unicode_cpt_flags` for one code point (only the bits the pre-tokenizers read).
/// `Flags::default()` (all zero) is what llama.cpp returns for a position outside the segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Flags(u16);

const NUMBER: u16 = 0x0002;
const LETTER: u16 = 0x0004;
const PUNCTUATION: u16 = 0x0020;
const CATEGORIES: u16 = 0x00FF;
const WS: u16 = 0x0100;

impl Flags {
    pub(crate) fn is_number(self) -> bool {
        self.0 & NUMBER != 0
    }
    pub(crate) fn is_letter(self) -> bool {
        self.0 & LETTER != 0
    }
    pub(crate) fn is_whitespace(self) -> bool {
        self.0 & WS != 0
    }
    /// The category bits alone (llama.cpp `category_flag()`).
    pub(crate) fn category(self) -> u16 {
        self.0 & CATEGORIES
    }
    pub(crate) fn is_punctuation_category(self) -> bool {
        self.category() == PUNCTUATION
    }
    pub(crate) fn is_number_category(self) -> bool {
        self.category() == NUMBER
    }
    /// llama.cpp `as_uint() != 0`: true for every code point inside the segment.
    pub(crate) fn any(self) -> bool {
        self.0 != 0
    }
}

/// Flags of a code point, as llama.cpp's `unicode_cpt_flags_from_cpt`.
pub(crate) fn flags(c: char) -> Flags {
    let cp = u32::from(c);
    // RANGES is sorted by start; find the last entry whose start <= cp.
    let idx = RANGES.partition_point(|&e| (e >> 8) <= cp);
    let cat = match idx.checked_sub(1).and_then(|i| RANGES.get(i)) {
        Some(&e) => (e & 0xFF) as u16,
        None => 0x0001,
    };
    let ws = if WHITESPACE.binary_search(&cp).is_ok() { WS } else { 0 };
    Flags(cat | ws)
}

/// ASCII-only lower-casing: llama.cpp's `unicode_tolower` maps no non-ASCII code point onto the
/// ASCII letters the contraction rules test (s t m d r e v l), so this is equivalent there.
pub(crate) fn ascii_lower(c: char) -> char {
    c.to_ascii_lowercase()
}

/// The GPT-2 byte → unicode table (`bytes_to_unicode`), and its inverse for code points < 324.
struct ByteMap {
    to_char: [char; 256],
    from_char: [Option<u8>; 324],
}

fn byte_map() -> &'static ByteMap {
    static MAP: OnceLock<ByteMap> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut from_char = [None; 324];
        let mut n = 0u32;
        for b in 0u32..256 {
            let direct = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
            let cp = if direct {
                b
            } else {
                n += 1;
                255 + n
            };
            let c = char::from_u32(cp).unwrap_or('\u{FFFD}');
            // b < 256 and cp < 324 by construction
            if let (Some(slot), Some(back)) = (to_char.get_mut(b as usize), from_char.get_mut(cp as usize)) {
                *slot = c;
                *back = Some(b as u8);
            }
        }
        ByteMap { to_char, from_char }
    })
}

/// The printable character GPT-2's byte-level BPE uses for byte `b`.
pub(crate) fn byte_to_char(b: u8) -> char {
    byte_map().to_char[usize::from(b)]
}

/// Inverse of [`byte_to_char`]: `None` for characters that stand for no byte.
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    byte_map().from_char.get(u32::from(c) as usize).copied().flatten()
}

/// Byte-encode a UTF-8 string the GPT-2 way: every byte becomes its printable character.
pub(crate) fn byte_encode(text: &str) -> String {
    text.bytes().map(byte_to_char).collect()
}

/// Length of the UTF-8 sequence that `lead` starts, by llama.cpp's `unicode_len_utf8` (1 for a
/// continuation or invalid byte).
pub(crate) fn utf8_len(lead: u8) -> usize {
    const LOOKUP: [usize; 16] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4];
    LOOKUP[usize::from(lead >> 4)]
}

/// Split `s` into llama.cpp "symbols": runs of `utf8_len(lead)` bytes (clamped to the end), returned
/// as (offset, len) pairs.
pub(crate) fn utf8_symbols(s: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(s.len());
    let mut off = 0;
    while let Some(&lead) = s.get(off) {
        let len = utf8_len(lead).min(s.len() - off);
        out.push((off, len));
        off += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(byte_to_char(b)), Some(b));
        }
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
    }

    #[test]
    fn classes() {
        assert!(flags('a').is_letter());
        assert!(flags('é').is_letter());
        assert!(flags('中').is_letter());
        assert!(flags('7').is_number());
        assert!(flags('²').is_number());
        assert!(flags(' ').is_whitespace());
        assert!(flags('\u{3000}').is_whitespace());
        assert!(!flags('!').is_letter());
        assert!(flags('!').is_punctuation_category());
        assert!(flags('\u{10FFFF}').any());
    }
}
