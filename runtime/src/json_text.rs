//! JSON text written straight into a byte buffer, for the few shapes the sidecar emits on
//! every decision (answers and decision-log lines). A general serializer spends most of
//! its time on keys and structure that are the same every time; here those are copied as
//! constant bytes and only the values are escaped. Output is byte-for-byte what
//! `serde_json` writes for the same values, which the tests check.

/// Appends `text` as a JSON string, quotes included.
pub(crate) fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(bytes.get(clean_from..index).unwrap_or_default());
                out.extend_from_slice(b"\\u00");
                out.push(hex_digit(byte >> 4));
                out.push(hex_digit(byte & 0xf));
                clean_from = index + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(bytes.get(clean_from..index).unwrap_or_default());
        out.extend_from_slice(escape);
        clean_from = index + 1;
    }
    out.extend_from_slice(bytes.get(clean_from..).unwrap_or_default());
    out.push(b'"');
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
    let mut digits = [0_u8; 20];
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
    out.extend_from_slice(digits.get(start..).unwrap_or_default());
}

/// Appends `nanos` as microseconds with three decimals (`37.486`), the precision the
/// decision log's `latency_us` has always had.
pub(crate) fn micros_from_nanos(out: &mut Vec<u8>, nanos: u64) {
    unsigned(out, nanos / 1_000);
    // Three decimals without their trailing zeros, but at least one: `1.0`, `1.2`, `1.234`.
    let mut fraction = nanos % 1_000;
    let mut places = 3;
    while places > 1 && fraction % 10 == 0 {
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
