//! Reading HTTP/1.1 answers off a keep-alive connection, for the fixed-rate load
//! generator (`http_rate`): just enough to know where one answer ends and what its status
//! is. It refuses what it cannot measure rather than guess.

/// Why an answer cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub struct BadAnswer(pub &'static str);

impl std::fmt::Display for BadAnswer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.0)
    }
}

impl std::error::Error for BadAnswer {}

/// The first answer in `unread`, once all of it has arrived: its status and its length
/// in bytes. `None` while it is still coming.
pub fn complete_answer(unread: &[u8]) -> Result<Option<(u16, usize)>, BadAnswer> {
    let Some(head_end) = unread.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(unread.get(..head_end).unwrap_or_default())
        .map_err(|_| BadAnswer("answer head is not UTF-8"))?;
    let status = head
        .get(9..12)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(BadAnswer("no status code in the answer"))?;
    let mut length = None;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| BadAnswer("Content-Length is not a number"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(BadAnswer("chunked answers are not supported"));
            }
        }
    }
    let total = head_end + 4 + length.ok_or(BadAnswer("answer without Content-Length"))?;
    Ok((unread.len() >= total).then_some((status, total)))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly"
    )]
    use super::{BadAnswer, complete_answer};

    #[test]
    fn an_answer_is_complete_once_its_body_is_in() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(complete_answer(&answer[..answer.len() - 1]).unwrap(), None);
        assert_eq!(complete_answer(answer).unwrap(), Some((200, answer.len())));
        let two = [
            &answer[..],
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ]
        .concat();
        assert_eq!(complete_answer(&two).unwrap(), Some((200, answer.len())));
        assert_eq!(
            complete_answer(&two[answer.len()..]).unwrap(),
            Some((403, two.len() - answer.len()))
        );
    }

    #[test]
    fn answers_it_cannot_measure_are_errors() {
        assert_eq!(
            complete_answer(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(BadAnswer("answer without Content-Length"))
        );
        assert_eq!(
            complete_answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(BadAnswer("chunked answers are not supported"))
        );
        assert_eq!(
            complete_answer(b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"),
            Err(BadAnswer("no status code in the answer"))
        );
    }
}
