//! Writing a JSON response byte for byte as hyper writes the router's: status line,
//! `content-type`, `content-length`, `date`, then the body.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

/// An IMF-fixdate, as the `date` header carries it, remade once a second.
struct DateCache {
    second: u64,
    text: String,
}

thread_local! {
    static DATE: RefCell<DateCache> = const {
        RefCell::new(DateCache { second: u64::MAX, text: String::new() })
    };
}

fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    DATE.with_borrow_mut(|date| {
        if date.second != second {
            date.second = second;
            date.text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(date.text.as_bytes());
    });
}

pub(super) fn write_reply(out: &mut Vec<u8>, status: StatusCode, body: &[u8]) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: application/json\r\ncontent-length: ");
    crate::json_text::unsigned(out, body.len() as u64);
    out.extend_from_slice(b"\r\ndate: ");
    write_date(out);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
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

    #[test]
    fn a_reply_has_hypers_head() {
        let mut out = Vec::new();
        write_reply(&mut out, StatusCode::BAD_REQUEST, b"{}");
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            lines[..3],
            [
                "HTTP/1.1 400 Bad Request",
                "content-type: application/json",
                "content-length: 2"
            ]
        );
        let date = lines[3].strip_prefix("date: ").unwrap();
        assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
        assert_eq!(lines.len(), 4);
        assert_eq!(body, "{}");
    }
}
