//! Reading a request head: is it a plain decision request, and how long are its head and
//! body? Anything this path does not answer itself is left to hyper, which then answers it
//! exactly as it would have answered it from the start.

use crate::server::api::{HotRoute, hot_route};

/// Headers a plain decision request has; a head with more goes to hyper.
const MAX_HEADERS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Head {
    /// The head has not all arrived yet.
    Partial,
    /// A decision request whose head is `head_len` bytes and body `body_len`.
    Plain {
        route: HotRoute,
        head_len: usize,
        body_len: usize,
    },
    /// Anything else: another route or method, HTTP/1.0, a chunked body or none,
    /// `Expect`, `Upgrade`, `Connection: close`, a body over the limit, malformed HTTP.
    Other,
}

pub(super) fn read_head(bytes: &[u8], max_body_bytes: usize) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let head_len = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Other,
    };
    if request.version != Some(1) {
        return Head::Other;
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Head::Other;
    };
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    let Some(route) = hot_route(method, path) else {
        return Head::Other;
    };
    let mut body_len = None;
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            match (body_len, content_length(header.value)) {
                (None, Some(length)) => body_len = Some(length),
                // Two lengths, or one that is not a plain number: hyper decides.
                _ => return Head::Other,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("expect")
            || name.eq_ignore_ascii_case("upgrade")
            || (name.eq_ignore_ascii_case("connection")
                && !header.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return Head::Other;
        }
    }
    match body_len {
        Some(body_len) if body_len <= max_body_bytes => Head::Plain {
            route,
            head_len,
            body_len,
        },
        _ => Head::Other,
    }
}

/// A `Content-Length` value: ASCII digits only, no sign, no overflow.
fn content_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || value.len() > 18 {
        return None;
    }
    value.iter().try_fold(0usize, |length, byte| {
        byte.is_ascii_digit()
            .then(|| length * 10 + usize::from(byte - b'0'))
    })
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

    const LIMIT: usize = 1 << 20;

    fn head(text: &str) -> Head {
        read_head(text.as_bytes(), LIMIT)
    }

    #[test]
    fn plain_decision_requests_are_measured() {
        let request = "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n";
        assert_eq!(
            head(&format!("{request}{{\"a\": 1}}")),
            Head::Plain {
                route: HotRoute::Decide,
                head_len: request.len(),
                body_len: 12
            }
        );
        let batch = "POST /v1/decide/batch?trace=1 HTTP/1.1\r\ncontent-length: 0\r\nConnection: Keep-Alive\r\n\r\n";
        assert_eq!(
            head(batch),
            Head::Plain {
                route: HotRoute::DecideBatch,
                head_len: batch.len(),
                body_len: 0
            }
        );
    }

    #[test]
    fn a_head_still_arriving_is_partial() {
        let full = "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
        for end in 0..full.len() {
            assert_eq!(head(&full[..end]), Head::Partial, "{:?}", &full[..end]);
        }
    }

    #[test]
    fn everything_else_is_left_to_hyper() {
        for request in [
            "GET /v1/decide HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            "POST /v1/decide/ HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            "POST /v1/policy HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            "POST http://x/v1/decide HTTP/1.1\r\nContent-Length: 2\r\n\r\n",
            "POST /v1/decide HTTP/1.0\r\nContent-Length: 2\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\nUpgrade: h2c\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n",
            "POST /v1/decide HTTP/1.1\r\nBad Header: 1\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert_eq!(head(request), Head::Other, "{request:?}");
        }
        let crowded = format!(
            "POST /v1/decide HTTP/1.1\r\nContent-Length: 2\r\n{}\r\n",
            "X-A: 1\r\n".repeat(MAX_HEADERS)
        );
        assert_eq!(head(&crowded), Head::Other);
    }
}
