//! JSON text written straight into a byte buffer, for the few shapes the sidecar emits on
//! every decision (answers and decision-log lines). A general serializer spends most of
//! its time on keys and structure that are the same every time; here those are copied as
//! constant bytes and only the values are escaped. Output is byte-for-byte what
//! `serde_json` writes for the same values, which the tests check.

/// Appends `text` as a JSON string, quotes included.
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut rest = text.as_bytes();
    while let Some(at) = first_to_escape(rest) {
        let (clean, from_escape) = rest.split_at(at);
        out.extend_from_slice(clean);
        let Some((&byte, after)) = from_escape.split_first() else {
            break;
        };
        escape(out, byte);
        rest = after;
    }
    out.extend_from_slice(rest);
    out.push(b'"');
}

fn escape(out: &mut Vec<u8>, byte: u8) {
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0xf));
        }
    }
}

/// Where the first byte that JSON must escape (`"`, `\`, or a control character) is.
/// Most strings have none, so this looks at eight bytes at a time: a byte-by-byte loop
/// was most of the cost of writing a decision-log line. Reading, the same bytes end a
/// string or make it need unescaping.
pub(crate) fn first_to_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH_BITS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        // Each term sets a byte's high bit where that byte is zero (below 0x20 for the
        // last). Borrows can mark bytes after a true match, never before it, so the
        // lowest marked byte is the first match.
        let marked = ((quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word))
            & HIGH_BITS;
        if marked != 0 {
            return Some(offset + (marked.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
        .map(|at| offset + at)
}

fn hex_digit(nibble: u8) -> u8 {
    if nibble < 10 {
        b'0' + nibble
    } else {
        b'a' + nibble - 10
    }
}

/// Appends `null` or the string.
pub(crate) fn optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends a JSON array of strings.
pub(crate) fn strings<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        string(out, item);
    }
    out.push(b']');
}

/// Appends an unsigned integer.
pub(crate) fn unsigned(out: &mut Vec<u8>, value: u64) {
    padded(out, value, 1);
}

/// Appends an unsigned integer with leading zeros up to `width` digits (at most 20).
pub(crate) fn padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    let mut rest = value;
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (rest % 10) as u8;
        }
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = start.min(digits.len().saturating_sub(width));
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends `nanos` as microseconds with three decimals (`37.486`), the precision the
/// decision log's `latency_us` has always had.
pub(crate) fn micros_from_nanos(out: &mut Vec<u8>, nanos: u64) {
    unsigned(out, nanos / 1_000);
    // Three decimals without their trailing zeros, but at least one: `1.0`, `1.2`, `1.234`.
    let mut fraction = nanos % 1_000;
    let mut places = 3;
    while places > 1 && fraction.is_multiple_of(10) {
        fraction /= 10;
        places -= 1;
    }
    out.push(b'.');
    let mut digits = [b'0'; 3];
    for place in (0..places).rev() {
        if let Some(digit) = digits.get_mut(place) {
            *digit = b'0' + (fraction % 10) as u8;
        }
        fraction /= 10;
    }
    out.extend_from_slice(digits.get(..places).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;

    fn written(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_control: String = (0_u8..0x20).map(char::from).collect();
        every_control.push_str("\"\\/\u{7f}é ✓ 🦀 end");
        for text in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "line\nbreak\r\ttab",
            &every_control,
        ] {
            assert_eq!(
                written(|out| string(out, text)),
                serde_json::to_string(text).unwrap(),
                "{text:?}"
            );
        }
    }

    /// Every position of every kind of escaped byte, across the eight-byte words.
    #[test]
    fn escapes_are_found_wherever_they_sit() {
        for special in (0_u8..0x20).chain([b'"', b'\\']) {
            for length in 1..20 {
                for at in 0..length {
                    let mut bytes = vec![b'a'; length];
                    bytes[at] = special;
                    // Bytes that sit close to the special ones, to catch a sloppy mask.
                    if at + 1 < length {
                        bytes[at + 1] = special.wrapping_add(1).max(0x20);
                    }
                    let text = String::from_utf8(bytes).unwrap();
                    assert_eq!(
                        written(|out| string(out, &text)),
                        serde_json::to_string(&text).unwrap(),
                        "{text:?}"
                    );
                }
            }
        }
        let near_misses: String = (0x20_u8..0x7f).map(char::from).collect::<String>() + "é✓";
        assert_eq!(
            first_to_escape(near_misses.replace(['"', '\\'], "").as_bytes()),
            None
        );
    }

    #[test]
    fn arrays_and_nulls_match_serde_json() {
        let items = ["a", "b\"", ""];
        assert_eq!(
            written(|out| strings(out, items)),
            serde_json::to_string(&items).unwrap()
        );
        assert_eq!(written(|out| strings(out, [])), "[]");
        assert_eq!(written(|out| optional_string(out, None)), "null");
        assert_eq!(written(|out| optional_string(out, Some("x"))), "\"x\"");
    }

    #[test]
    fn integers_print_every_digit() {
        for value in [0, 7, 10, 99, 1_000_000, u64::MAX] {
            assert_eq!(written(|out| unsigned(out, value)), value.to_string());
            assert_eq!(
                written(|out| padded(out, value, 10)),
                format!("{value:010}")
            );
        }
    }

    /// The same text `serde_json` gives the `f64` the log used to carry.
    #[test]
    fn microseconds_read_as_the_float_did() {
        for nanos in [
            0, 1, 10, 100, 999, 1_000, 1_200, 37_486, 7_191, 120_050, 5_000_001,
        ] {
            let expected = serde_json::to_string(&(nanos as f64 / 1_000.0)).unwrap();
            assert_eq!(
                written(|out| micros_from_nanos(out, nanos)),
                expected,
                "{nanos} ns"
            );
        }
    }
}
