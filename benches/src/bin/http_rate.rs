//! Fixed-rate load generator for HTTP/1.1 keep-alive. It sends RATE requests a second,
//! evenly spaced over CONNECTIONS connections, for SECONDS after a one-second warm-up, and
//! times every answer from when its request was *due*, not from when it left.
//!
//! `wrk` waits for each answer before sending the next request, so while the server
//! stalls it sends nothing and its tail leaves the stall out ("coordinated omission"); run
//! flat out, its latencies also measure the queue it builds itself. Here a request that
//! had to wait for its connection counts that wait, and the rate is the caller's, so the
//! percentiles answer "at this many decisions a second, how slow are the slowest".
//!
//! One thread. Between sends it sleeps on a timer with nanosecond resolution (epoll's own
//! timeout has only milliseconds), so it uses CPU in proportion to the rate, as a proxy in
//! front of the sidecar would, and the server may use every core. It wakes in ticks of
//! `TICK` and sends everything due by then, so a request leaves up to one tick after it
//! was due, and that delay counts in its latency.
//!
//! Usage: http_rate ADDR PATH BODY [RATE] [CONNECTIONS] [SECONDS]

use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::time::{Duration, Instant};

use benches::http_answer::complete_answer;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

const WARM_UP: Duration = Duration::from_secs(1);
/// How long answers still in flight are awaited once sending stops.
const DRAIN: Duration = Duration::from_secs(2);
/// A request that leaves this much after it was due is counted as sent late: its
/// connection was still waiting for the previous answer, or the generator woke late.
const LATE: Duration = Duration::from_millis(1);
/// Waking this long after the timer was due means the generator itself was kept off the
/// CPU; such wake-ups are reported, since every request due meanwhile counts the delay.
const LATE_WAKE: Duration = Duration::from_micros(500);
/// The generator's granularity: at 50,000 requests a second a wake-up per request
/// would cost it as much CPU as the server spends answering.
const TICK: Duration = Duration::from_micros(100);
const TIMER: Token = Token(usize::MAX);

type Error = Box<dyn std::error::Error>;

struct Connection {
    stream: TcpStream,
    /// When the request in flight was due; `None` while the connection is idle.
    due: Option<Instant>,
    /// Requests given to this connection so far.
    given: u64,
    /// Bytes of the request in flight not yet written.
    unwritten: usize,
    unread: Vec<u8>,
}

struct Tally {
    /// Microseconds from due to answered, for requests due after the warm-up.
    latencies: Vec<u32>,
    not_ok: u64,
    late: u64,
    /// The generator's own late wake-ups (see `LATE_WAKE`): how many, and the latest.
    late_wakes: u64,
    latest_wake: Duration,
}

impl Tally {
    fn percentile(&self, fraction: f64) -> f64 {
        let index = ((self.latencies.len() as f64 - 1.0) * fraction).round() as usize;
        f64::from(self.latencies.get(index).copied().unwrap_or(0)) / 1000.0
    }
}

/// A one-shot timer that epoll can wait on.
struct Timer(OwnedFd);

impl Timer {
    fn new(poll: &Poll) -> Result<Timer, Error> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        poll.registry()
            .register(&mut SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)?;
        Ok(Timer(fd))
    }

    /// Fires once, `after` from now (which must not be zero: that disarms the timer).
    fn arm(&self, after: Duration) -> Result<(), Error> {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = Timespec {
            tv_sec: i64::try_from(after.as_secs())?,
            tv_nsec: i64::from(after.subsec_nanos()),
        };
        timerfd_settime(
            &self.0,
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        Ok(())
    }

    /// Clears the expiry, so the next one wakes the poll again.
    fn clear(&self) {
        let mut count = [0_u8; 8];
        let _ = rustix::io::read(&self.0, &mut count);
    }
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: http_rate ADDR PATH BODY [RATE] [CONNECTIONS] [SECONDS]";
    let address: std::net::SocketAddr = args.next().ok_or(usage)?.parse()?;
    let path = args.next().ok_or(usage)?;
    let body = args.next().ok_or(usage)?;
    let rate: f64 = args.next().map_or(Ok(50_000.0), |text| text.parse())?;
    let count: usize = args.next().map_or(Ok(64), |text| text.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |text| text.parse())?;
    if rate <= 0.0 || count == 0 {
        return Err(usage.into());
    }
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes();

    let mut poll = Poll::new()?;
    let timer = Timer::new(&poll)?;
    let mut connections = Vec::with_capacity(count);
    for index in 0..count {
        let stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(index), Interest::READABLE)?;
        connections.push(Connection {
            stream,
            due: None,
            given: 0,
            unwritten: 0,
            unread: Vec::with_capacity(4096),
        });
    }

    let start = Instant::now();
    let measured_from = start + WARM_UP;
    let stop_sending = measured_from + Duration::from_secs(seconds);
    // The n-th request overall is due at n / RATE; connection i takes n = k·count + i.
    let due_at = |index: usize, given: u64| {
        let n = given as f64 * count as f64 + index as f64;
        start + Duration::from_secs_f64(n / rate)
    };
    let mut tally = Tally {
        latencies: Vec::with_capacity((rate * seconds as f64) as usize + 1024),
        not_ok: 0,
        late: 0,
        late_wakes: 0,
        latest_wake: Duration::ZERO,
    };
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0_u8; 64 * 1024];
    // When the armed timer was due to fire, to see how late the generator woke.
    let mut alarm: Option<Instant> = None;
    loop {
        let now = Instant::now();
        // Done once every request due before the end has been answered, or after DRAIN.
        let finished = connections
            .iter()
            .enumerate()
            .all(|(index, c)| c.due.is_none() && due_at(index, c.given) >= stop_sending);
        if finished || now > stop_sending + DRAIN {
            break;
        }
        let mut next_due: Option<Instant> = None;
        for (index, connection) in connections.iter_mut().enumerate() {
            let due = due_at(index, connection.given);
            if connection.due.is_none() && due < stop_sending {
                if due <= now {
                    connection.due = Some(due);
                    connection.given += 1;
                    connection.unwritten = request.len();
                    if due >= measured_from && now.duration_since(due) > LATE {
                        tally.late += 1;
                    }
                } else if next_due.is_none_or(|next| due < next) {
                    next_due = Some(due);
                }
            }
            while connection.unwritten > 0 {
                let from = request.len() - connection.unwritten;
                match connection
                    .stream
                    .write(request.get(from..).unwrap_or_default())
                {
                    Ok(written) => connection.unwritten -= written,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error.into()),
                }
            }
        }
        let wait = match next_due {
            Some(due) => {
                // Rounded up to the next tick, so requests due close together go together.
                let ticks = due
                    .duration_since(start)
                    .as_nanos()
                    .div_ceil(TICK.as_nanos());
                let wake = start + TICK * u32::try_from(ticks)?;
                let after = wake.saturating_duration_since(Instant::now());
                if after.is_zero() {
                    Some(Duration::ZERO)
                } else {
                    if alarm != Some(wake) {
                        timer.arm(after)?;
                        alarm = Some(wake);
                    }
                    None
                }
            }
            // Nothing to send before an answer comes; wake now and then to check the end.
            None => Some(Duration::from_millis(10)),
        };
        poll.poll(&mut events, wait)?;
        for event in &events {
            if event.token() == TIMER {
                timer.clear();
                if let Some(due) = alarm.take() {
                    let woke = Instant::now();
                    let late_by = woke.saturating_duration_since(due);
                    if woke >= measured_from && late_by >= LATE_WAKE {
                        tally.late_wakes += 1;
                        tally.latest_wake = tally.latest_wake.max(late_by);
                    }
                }
                continue;
            }
            let connection = connections
                .get_mut(event.token().0)
                .ok_or("event for an unknown connection")?;
            loop {
                match connection.stream.read(&mut buffer) {
                    Ok(0) => return Err("the server closed a connection".into()),
                    Ok(read) => {
                        connection
                            .unread
                            .extend_from_slice(buffer.get(..read).unwrap_or_default());
                        // A short read emptied the socket; the next data raises a new event.
                        if read < buffer.len() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => return Err(error.into()),
                }
            }
            let answered = Instant::now();
            while let Some((status, length)) = complete_answer(&connection.unread)? {
                connection.unread.drain(..length);
                let due = connection.due.take().ok_or("an answer nobody asked for")?;
                if due >= measured_from {
                    let micros = answered.duration_since(due).as_micros();
                    tally
                        .latencies
                        .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    if !(200..300).contains(&status) {
                        tally.not_ok += 1;
                    }
                }
            }
        }
    }

    // Requests still waiting at the end, for an answer or for their connection, are the
    // slowest of all: they count at what they had waited so far, not left out.
    let end = Instant::now();
    let mut unanswered = 0_u64;
    for (index, connection) in connections.iter().enumerate() {
        let waiting = connection.due.into_iter().chain(
            (connection.given..)
                .map(|given| due_at(index, given))
                .take_while(|due| *due < stop_sending),
        );
        for due in waiting.filter(|due| *due >= measured_from) {
            unanswered += 1;
            let micros = end.duration_since(due).as_micros();
            tally
                .latencies
                .push(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }
    tally.latencies.sort_unstable();
    println!(
        "asked {rate:.0}/s on {count} connections for {seconds} s after {} s of warm-up: \
         answered {} ({:.0}/s), {} not 2xx, {unanswered} unanswered, {} sent more than {} ms late",
        WARM_UP.as_secs(),
        tally.latencies.len() as u64 - unanswered,
        (tally.latencies.len() as u64 - unanswered) as f64 / seconds as f64,
        tally.not_ok,
        tally.late,
        LATE.as_millis(),
    );
    println!(
        "latency from when each request was due: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
        tally.percentile(0.5),
        tally.percentile(0.9),
        tally.percentile(0.99),
        tally.percentile(0.999),
        tally.percentile(1.0),
    );
    println!(
        "the generator woke {} µs or more after its timer {} times, at worst {:.3} ms late",
        LATE_WAKE.as_micros(),
        tally.late_wakes,
        tally.latest_wake.as_secs_f64() * 1000.0,
    );
    Ok(())
}
