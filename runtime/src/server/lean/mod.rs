//! The decision routes' own HTTP/1.1 path. Nearly all of a sidecar's traffic is
//! `POST /v1/decide` and `/v1/decide/batch` on keep-alive connections, and hyper's general
//! machinery (header maps, a body channel, a timer armed for every request, boxed service
//! futures) cost about as much user-space time as deciding itself (benches/README.md).
//! A connection starts here and stays while its requests are plain decision requests
//! ([`head::Head::Plain`]). At the first request that is not, it is handed to hyper with
//! every byte read and not yet answered, and hyper serves it from then on, so everything
//! else (other routes, `Expect`, chunked bodies, malformed HTTP, oversized heads and
//! bodies) is answered exactly as before.

mod head;
mod reply;

use std::pin::Pin;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::time::{Instant, Sleep};

use self::head::{Head, read_head};
use super::AppState;
use super::api::refused;
use super::drain::Closing;
use super::listen::slow_head;

/// How a connection left this path.
pub(crate) enum Left {
    /// The client went away, was too slow, or shutdown closed the connection.
    Closed,
    /// For hyper to serve, starting with these bytes, read and not yet answered.
    ToHyper(Vec<u8>),
}

/// Bytes read at a time: a plain decision request fits many times over.
const READ_SIZE: usize = 8 * 1024;

/// The most a body read asks for at once.
const BODY_READ_SIZE: usize = 64 * 1024;

/// Buffers larger than this, grown for a large batch, are let go once it is answered,
/// so idle keep-alive connections stay small.
const KEPT_CAPACITY: usize = 4 * READ_SIZE;

pub(crate) async fn serve<S>(stream: &mut S, state: &AppState, closing: &mut Closing) -> Left
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &state.config.limits;
    let mut input: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut output: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut clock = Deadline::new(limits.header_read_timeout, limits.idle_timeout);
    let shutdown = closing.requested();
    tokio::pin!(shutdown);
    let mut shutting_down = false;
    loop {
        match read_head(&input, state.config.max_body_bytes) {
            Head::Plain {
                route,
                head_len,
                body_len,
            } => {
                let end = head_len + body_len;
                if let Some(body) = input.get(head_len..end) {
                    match super::api::answer_body(route, state, body) {
                        Ok(answer) => reply::write_reply(&mut output, StatusCode::OK, &answer.0),
                        Err(error) => reply::write_reply(&mut output, error.status, &error.body()),
                    }
                    input.drain(..end);
                    clock.answered();
                    // Pipelined requests already read are answered before writing.
                    continue;
                }
                clock.body_started();
                // Grown as the body arrives, not at its announced length, so a client
                // cannot make the server set memory aside for bytes it never sends.
                input.reserve((end - input.len()).min(BODY_READ_SIZE));
            }
            Head::Partial if input.len() < limits.max_header_bytes => {
                if !input.is_empty() {
                    clock.head_started();
                }
            }
            Head::Partial | Head::Other => {
                return match write_out(stream, &mut output).await {
                    Ok(()) => Left::ToHyper(input),
                    Err(_) => Left::Closed,
                };
            }
        }
        if write_out(stream, &mut output).await.is_err() {
            return Left::Closed;
        }
        if shutting_down && input.is_empty() {
            return Left::Closed;
        }
        if input.is_empty() && input.capacity() > KEPT_CAPACITY {
            input = Vec::with_capacity(READ_SIZE);
        }
        if input.capacity() - input.len() < READ_SIZE / 2 {
            input.reserve(READ_SIZE);
        }
        tokio::select! {
            biased;
            read = stream.read_buf(&mut input) => match read {
                Ok(0) => {
                    if clock.reading_body() {
                        refused(state, super::api::incomplete_body(&"the connection closed"));
                    }
                    return Left::Closed;
                }
                Err(error) => {
                    if clock.reading_body() {
                        refused(state, super::api::incomplete_body(&error));
                    }
                    return Left::Closed;
                }
                Ok(_) => {}
            },
            () = clock.expired() => {
                if let Some(error) = clock.refusal(input.is_empty()) {
                    // A client still sending its body is told why; one that never
                    // finished its head gets no answer, as from hyper.
                    if clock.reading_body() {
                        reply::write_reply(&mut output, error.status, &error.body());
                    }
                    refused(state, error);
                    let _ = write_out(stream, &mut output).await;
                }
                return Left::Closed;
            },
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                if input.is_empty() {
                    return Left::Closed;
                }
            },
        }
    }
}

async fn write_out<S>(stream: &mut S, output: &mut Vec<u8>) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if output.is_empty() {
        return Ok(());
    }
    stream.write_all(output).await?;
    stream.flush().await?;
    output.clear();
    if output.capacity() > KEPT_CAPACITY {
        *output = Vec::with_capacity(READ_SIZE);
    }
    Ok(())
}

/// Where the request being read stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request's first byte since the previous answer: up to the idle limit.
    Idle,
    /// Reading a head (or waiting for the first one on a new connection): up to the head
    /// limit from its first byte, or from the connection's start.
    Head,
    /// The head is complete; the body must follow within the head limit.
    Body,
}

/// The request deadline with one timer per connection. Arming a timer for every request
/// costs as much as parsing its head, so the timer is moved earlier only when a phase
/// with a nearer deadline begins part-way (a head or body split across reads); otherwise
/// it is only ever moved later: when it fires before the request's deadline, it is set to
/// that deadline and waits again.
struct Deadline {
    head_limit: Duration,
    idle_limit: Duration,
    timer: Pin<Box<Sleep>>,
    phase: Phase,
    /// When the current wait is due; `None` until it begins.
    due: Option<Instant>,
}

impl Deadline {
    fn new(head_limit: Duration, idle_limit: Duration) -> Deadline {
        Deadline {
            head_limit,
            idle_limit,
            timer: Box::pin(tokio::time::sleep(head_limit)),
            phase: Phase::Head,
            due: None,
        }
    }

    /// Part of a head has arrived.
    fn head_started(&mut self) {
        if self.phase == Phase::Idle {
            self.phase = Phase::Head;
            self.due = Some(Instant::now() + self.head_limit);
        }
    }

    fn body_started(&mut self) {
        if self.phase != Phase::Body {
            self.phase = Phase::Body;
            self.due = Some(Instant::now() + self.head_limit);
        }
    }

    fn answered(&mut self) {
        self.phase = Phase::Idle;
        self.due = None;
    }

    fn reading_body(&self) -> bool {
        self.phase == Phase::Body
    }

    /// Completes when the current wait is overdue.
    async fn expired(&mut self) {
        let limit = match self.phase {
            Phase::Idle => self.idle_limit,
            Phase::Head | Phase::Body => self.head_limit,
        };
        let due = *self.due.get_or_insert_with(|| Instant::now() + limit);
        if self.timer.deadline() > due {
            self.timer.as_mut().reset(due);
        }
        loop {
            self.timer.as_mut().await;
            if Instant::now() >= due {
                return;
            }
            self.timer.as_mut().reset(due);
        }
    }

    /// What an expired deadline is logged as: nothing for a keep-alive connection that
    /// simply sat idle, or a new one that never said anything.
    fn refusal(&self, nothing_read: bool) -> Option<super::error::ApiError> {
        match self.phase {
            Phase::Idle => None,
            Phase::Head if nothing_read => None,
            Phase::Head => Some(slow_head(self.head_limit)),
            Phase::Body => Some(super::api::slow_body(self.head_limit)),
        }
    }
}
