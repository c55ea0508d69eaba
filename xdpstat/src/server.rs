//! The HTTP/1.1 server behind `xdpstat export`, on `std::net`: one thread
//! per connection, under [`Limits`] that make a slow or hostile client cost
//! only its own connection.
//!
//! It replaces tiny_http, which could not be bounded. tiny_http answers
//! every connection from one thread, with blocking writes and no timeout,
//! so a client that pipelines requests and reads nothing stops all other
//! scrapes once its socket buffer is full. It also reads pipelined requests
//! ahead with no limit, and it has no setting for either. The exporter
//! needs only `GET` and `HEAD` without a body, which takes little code.
//! This server reads one request head at a time into a fixed buffer and
//! answers with a `Content-Length`. Whatever the client sends ahead stays
//! in the kernel's socket buffer, whose size the kernel bounds.
//!
//! A connection thread scrapes on its own, so a slow client delays nobody.
//! Scrapes still take turns at the counters reader, which is behind a
//! mutex.

use std::{
    io::{self, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use crate::output::prometheus::{route, Metrics, Reply};

/// What one client may take of the server. [`Limits::default`] gives the
/// limits `xdpstat export` uses.
///
/// A connection holds at most `max_head` bytes of requests in user space,
/// one response, and a thread. The kernel bounds its socket buffers. At
/// most `max_connections` are open at once, so the server's memory has a
/// bound whatever the clients do. With the defaults, a flood from 300
/// connections added about 20 MiB to the idle exporter's 12 MiB RSS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How many connections are served at once: 256 by default, above the
    /// 200 concurrent scrapes the tests make. One more connection gets a
    /// `503` and is closed; the accept loop never waits for a client.
    pub max_connections: usize,
    /// How long a request head may take to arrive in full: 5 s by default.
    /// The clock starts when the connection opens, and again after each
    /// response. A scraper sends its request as soon as it connects, so
    /// 5 s is generous on any network. A connection that sends nothing is
    /// closed when the time is up. One that sent part of a request gets a
    /// `408` first. Trickling bytes does not restart the clock.
    pub request_timeout: Duration,
    /// How long a response may take to write in full: 5 s by default. A
    /// response is a few KiB, so a client that has not taken it in 5 s is
    /// not reading, and its connection is closed.
    pub write_timeout: Duration,
    /// How many requests one connection may make, pipelined or one at a
    /// time: 32 by default. The last answer says `Connection: close`.
    /// Requests pipelined beyond it are never read. Each request is a
    /// scrape of the kernel's counters. Prometheus sends one request at a
    /// time, so this only makes it reconnect every 32 scrapes.
    pub max_requests: u32,
    /// How long a connection may take new requests: 60 s by default. With
    /// the two timeouts, this puts a connection's whole life under 70 s.
    pub max_lifetime: Duration,
    /// The largest request head (request line and headers) that is read:
    /// 8 KiB by default, nginx's default too. Prometheus sends about
    /// 300 bytes. A larger head gets a `431` and the connection is closed.
    pub max_head: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_requests: 32,
            max_lifetime: Duration::from_secs(60),
            max_head: 8 * 1024,
        }
    }
}

/// How often blocked threads check the stop flag, so that a signal stops
/// the server within about this long.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The listen backlog. std listens with 128, and 200 scrapers connecting
/// at once would overflow it. A dropped SYN costs its client a second
/// before it retries. The kernel caps this at `net.core.somaxconn`.
const LISTEN_BACKLOG: libc::c_int = 1024;

/// The exporter's listening socket.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    limits: Limits,
}

impl Server {
    /// Listens on `addr`.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound (in use, not local, no permission).
    pub fn bind(addr: SocketAddr, limits: Limits) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        // A second listen(2) on a listening socket only changes its backlog.
        // SAFETY: listen on a socket this function owns.
        if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // poll(2) says when to accept, and a connection that is reset in
        // between must not block the accept.
        listener.set_nonblocking(true)?;
        Ok(Self { listener, limits })
    }

    /// The address it listens on (with the port, when `bind` was given 0).
    ///
    /// # Errors
    ///
    /// `getsockname` failing.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `metrics` until `stop` is set, then waits for the open
    /// connections, which close within 200 ms (`POLL_INTERVAL`).
    ///
    /// # Errors
    ///
    /// When the server can no longer accept connections. Running out of
    /// file descriptors or memory is not such an error: the server waits
    /// and tries again.
    pub fn serve(&self, metrics: &Metrics, stop: &AtomicBool) -> io::Result<()> {
        let stopping = Stopping {
            signal: stop,
            failed: AtomicBool::new(false),
        };
        let active = AtomicUsize::new(0);
        let mut spawn_failed = false;
        thread::scope(|scope| {
            while !stopping.now() {
                let stream = match self.accept() {
                    Ok(Some(stream)) => stream,
                    Ok(None) => continue,
                    Err(e) => {
                        stopping.failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                if active.load(Ordering::Relaxed) >= self.limits.max_connections {
                    reject(stream);
                    continue;
                }
                let slot = Slot::take(&active);
                let (limits, stopping) = (&self.limits, &stopping);
                let spawned = thread::Builder::new()
                    .name("xdpstat-http".to_owned())
                    .spawn_scoped(scope, move || {
                        let _slot = slot;
                        Connection::new(stream, limits, stopping).run(metrics);
                    });
                // The closure is dropped, and the connection closed with it.
                if let Err(e) = spawned {
                    if !spawn_failed {
                        eprintln!("xdpstat: export: cannot start threads for connections, so they are closed unanswered (said once): {e}");
                        spawn_failed = true;
                    }
                }
            }
            Ok(())
        })
    }

    /// The next connection, or `None` after `POLL_INTERVAL` without one
    /// or a passing error.
    fn accept(&self) -> io::Result<Option<TcpStream>> {
        let mut pollfd = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = POLL_INTERVAL.as_millis() as libc::c_int;
        // SAFETY: one pollfd, which outlives the call.
        if unsafe { libc::poll(&mut pollfd, 1, timeout) } < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        match self.listener.accept() {
            // Linux does not pass O_NONBLOCK on to accepted sockets, but
            // the connection code relies on blocking reads with timeouts.
            Ok((stream, _)) => stream.set_nonblocking(false).map(|()| Some(stream)),
            Err(e) => match e.raw_os_error() {
                // The connection waits in the backlog until a descriptor or
                // memory is free; poll would say so again at once.
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    thread::sleep(POLL_INTERVAL);
                    Ok(None)
                }
                // accept(2): network errors pending on the new connection
                // are reported by accept, and mean only that connection.
                Some(
                    libc::EAGAIN
                    | libc::EINTR
                    | libc::ECONNABORTED
                    | libc::EPERM
                    | libc::EPROTO
                    | libc::ENETDOWN
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::EOPNOTSUPP
                    | libc::ENETUNREACH,
                ) => Ok(None),
                _ => Err(e),
            },
        }
    }
}

/// When connections must finish: the caller's stop flag, or the listener
/// failing.
struct Stopping<'a> {
    signal: &'a AtomicBool,
    failed: AtomicBool,
}

impl Stopping<'_> {
    fn now(&self) -> bool {
        self.signal.load(Ordering::Relaxed) || self.failed.load(Ordering::Relaxed)
    }
}

/// One of the `max_connections` slots, given back on drop (a panicking
/// connection thread too).
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(active: &'a AtomicUsize) -> Self {
        active.fetch_add(1, Ordering::Relaxed);
        Self(active)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers a connection beyond `max_connections` with a `503` and closes
/// it.
fn reject(mut stream: TcpStream) {
    // Non-blocking, so that the accept loop never waits for this client:
    // the short answer fits in a new socket's buffer.
    let _ = stream.set_nonblocking(true);
    let reply = Reply {
        status: 503,
        content_type: TEXT,
        body: "too many connections; try again\n".to_owned(),
    };
    let _ = stream.write_all(&response(&reply, true, true));
    let _ = stream.shutdown(Shutdown::Write);
}

const TEXT: &str = "text/plain; charset=utf-8";

/// An error answer, after which the connection is closed.
fn error_reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        content_type: TEXT,
        body: body.to_owned(),
    }
}

/// A response's bytes: status line, headers, and the body unless
/// `with_body` is false (`HEAD`).
fn response(reply: &Reply, with_body: bool, close: bool) -> Vec<u8> {
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    };
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    if reply.status == 405 {
        head.push_str("Allow: GET, HEAD\r\n");
    }
    if reply.status == 503 {
        head.push_str("Retry-After: 1\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if with_body {
        bytes.extend_from_slice(reply.body.as_bytes());
    }
    bytes
}

/// What the server needs of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Request {
    method: String,
    /// The path and query (an absolute URL is cut down to them).
    target: String,
    accept: Option<String>,
    /// Whether the client lets the connection stay open after the answer:
    /// HTTP/1.1 without `Connection: close`. HTTP/1.0 keep-alive is not
    /// offered; scrapers speak 1.1.
    keep_alive: bool,
    /// Whether a body follows. The server reads none, so it answers and
    /// closes rather than look for the next request inside the body.
    has_body: bool,
}

/// Where the head at the start of `buf` ends (just past its empty line),
/// once it has arrived. Lines end with CRLF, or a bare LF, which RFC 9112
/// lets a server accept.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some(i + 1);
            }
            line_start = i + 1;
        }
    }
    None
}

/// Empty lines a client may send before a request (RFC 9112 §2.2).
fn leading_blank_lines(buf: &[u8]) -> usize {
    let mut n = 0;
    while let Some(rest) = buf.get(n..) {
        if rest.starts_with(b"\r\n") {
            n += 2;
        } else if rest.starts_with(b"\n") {
            n += 1;
        } else {
            break;
        }
    }
    n
}

/// Parses a request head (request line, headers, empty line).
fn parse_head(head: &[u8]) -> Result<Request, Reply> {
    let bad = || error_reply(400, "bad request\n");
    let head = std::str::from_utf8(head).map_err(|_| bad())?;
    let mut lines = head.lines();
    let mut parts = lines.next().ok_or_else(bad)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let is_token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    if !is_token(method) || target.is_empty() {
        return Err(bad());
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.starts_with("HTTP/") => {
            return Err(error_reply(505, "only HTTP/1.0 and HTTP/1.1 are served\n"))
        }
        _ => return Err(bad()),
    };
    let mut request = Request {
        method: method.to_owned(),
        target: origin_form(target).to_owned(),
        accept: None,
        keep_alive: http11,
        has_body: false,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        // Folded lines are obsolete, and whitespace before the colon is
        // forbidden (RFC 9112 §5).
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        if !is_token(name) {
            return Err(bad());
        }
        let value = value.trim_matches([' ', '\t']);
        if name.eq_ignore_ascii_case("accept") {
            request.accept = Some(match request.accept.take() {
                Some(earlier) => format!("{earlier}, {value}"),
                None => value.to_owned(),
            });
        } else if name.eq_ignore_ascii_case("connection") {
            if value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"))
            {
                request.keep_alive = false;
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let length: u64 = value.parse().map_err(|_| bad())?;
            request.has_body |= length > 0;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            request.has_body = true;
        }
    }
    Ok(request)
}

/// The path and query of a request target: `http://host/metrics` (the
/// absolute form, which RFC 9112 says a server must accept) becomes
/// `/metrics`.
fn origin_form(target: &str) -> &str {
    let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    else {
        return target;
    };
    rest.find('/').map_or("/", |at| &rest[at..])
}

/// Why reading stopped.
enum Stop {
    /// The client closed the connection, or it failed.
    Closed,
    /// The time limit passed.
    TimedOut,
    /// The server is stopping.
    Stopping,
}

/// One client connection, on its own thread.
struct Connection<'a> {
    stream: TcpStream,
    limits: &'a Limits,
    stopping: &'a Stopping<'a>,
    /// Bytes read and not yet parsed: the start of the next request.
    buf: Vec<u8>,
    /// When the connection stops taking requests.
    retires: Instant,
}

impl<'a> Connection<'a> {
    fn new(stream: TcpStream, limits: &'a Limits, stopping: &'a Stopping<'a>) -> Self {
        Self {
            stream,
            limits,
            stopping,
            buf: Vec::with_capacity(limits.max_head),
            retires: Instant::now() + limits.max_lifetime,
        }
    }

    /// Answers requests until the client is done, a limit is reached or
    /// the server stops; then closes the connection.
    fn run(mut self, metrics: &Metrics) {
        // Each answer is written whole; waiting to fill a segment only
        // delays it.
        let _ = self.stream.set_nodelay(true);
        for served in 1..=self.limits.max_requests {
            let request = match self.read_request() {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(reply) => {
                    self.write(&response(&reply, true, true));
                    break;
                }
            };
            let last = served == self.limits.max_requests
                || !request.keep_alive
                || request.has_body
                || Instant::now() >= self.retires;
            let reply = route(
                metrics,
                &request.method,
                &request.target,
                request.accept.as_deref(),
            );
            let with_body = request.method != "HEAD";
            if !self.write(&response(&reply, with_body, last)) || last {
                break;
            }
        }
        self.close();
    }

    /// The next request, `None` when there is none to answer, or the error
    /// answer to give before closing.
    fn read_request(&mut self) -> Result<Option<Request>, Reply> {
        let deadline = (Instant::now() + self.limits.request_timeout).min(self.retires);
        loop {
            let blank = leading_blank_lines(&self.buf);
            self.buf.drain(..blank);
            if let Some(end) = head_end(&self.buf) {
                let request = parse_head(&self.buf[..end]);
                self.buf.drain(..end);
                return request.map(Some);
            }
            if self.buf.len() >= self.limits.max_head {
                return Err(error_reply(431, "request head too large\n"));
            }
            match self.fill(deadline) {
                Ok(()) => {}
                Err(Stop::TimedOut) if !self.buf.is_empty() => {
                    return Err(error_reply(408, "the request took too long to arrive\n"))
                }
                Err(Stop::TimedOut | Stop::Closed | Stop::Stopping) => return Ok(None),
            }
        }
    }

    /// Reads what has arrived into `buf`, up to `max_head`, waiting until
    /// `deadline` at most.
    fn fill(&mut self, deadline: Instant) -> Result<(), Stop> {
        let mut chunk = [0u8; 4096];
        let room = (self.limits.max_head - self.buf.len()).min(chunk.len());
        loop {
            if self.stopping.now() {
                return Err(Stop::Stopping);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(Stop::TimedOut);
            }
            // A zero timeout would mean none; slices of POLL_INTERVAL let
            // the stop flag be seen.
            let slice = wait.min(POLL_INTERVAL).max(Duration::from_millis(1));
            if self.stream.set_read_timeout(Some(slice)).is_err() {
                return Err(Stop::Closed);
            }
            match self.stream.read(&mut chunk[..room]) {
                Ok(0) => return Err(Stop::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => return Err(Stop::Closed),
            }
        }
    }

    /// Writes `bytes` within `write_timeout`; false when it could not.
    fn write(&mut self, bytes: &[u8]) -> bool {
        let deadline = Instant::now() + self.limits.write_timeout;
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.stopping.now() {
                return false;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return false;
            }
            let slice = wait.min(POLL_INTERVAL).max(Duration::from_millis(1));
            if self.stream.set_write_timeout(Some(slice)).is_err() {
                return false;
            }
            match self.stream.write(rest) {
                Ok(0) => return false,
                Ok(n) => rest = &rest[n..],
                Err(e) if is_timeout(&e) => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// Closes the connection so that the last answer reaches the client:
    /// closing a socket with unread input makes the kernel reset the
    /// connection, and a reset can discard an answer the client has not
    /// read yet. So the write side is shut first, and a little of what the
    /// client sent is read and dropped.
    fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        let _ = self
            .stream
            .set_read_timeout(Some(Duration::from_millis(50)));
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            match (&self.stream).read(&mut sink) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// Whether a socket error is a timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO` give
/// `EAGAIN`) or a signal.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use xdpstat_common::Counters;

    use super::*;
    use crate::model::{
        counters::Snapshot,
        layout::Layout,
        monitor::Sample,
        scrape::{Reading, Source},
    };

    #[derive(Debug)]
    struct Nothing;

    impl Source for Nothing {
        fn read(&self) -> Vec<Reading> {
            Vec::new()
        }
    }

    /// 2000 interfaces: answers of about 200 KB, which fill socket buffers
    /// in a few responses.
    #[derive(Debug)]
    struct Wide;

    impl Source for Wide {
        fn read(&self) -> Vec<Reading> {
            (0..2000)
                .map(|i| Reading {
                    sample: Sample {
                        iface: format!("veth{i}"),
                        snapshot: Some(Snapshot {
                            layout: Layout::Shared,
                            map_id: i,
                            cpus: Vec::new(),
                            total: Counters::default(),
                            taken: Instant::now(),
                        }),
                        rates: None,
                        cpu_rates: Vec::new(),
                        notice: None,
                        present: true,
                        observed: None,
                    },
                    program: None,
                    program_error: None,
                    observed: None,
                })
                .collect()
        }
    }

    fn quick() -> Limits {
        Limits {
            max_connections: 4,
            request_timeout: Duration::from_millis(300),
            write_timeout: Duration::from_millis(300),
            max_requests: 3,
            max_lifetime: Duration::from_secs(10),
            max_head: 512,
        }
    }

    /// Runs a server with `limits` for the length of `f`.
    fn with_server(limits: Limits, f: impl FnOnce(SocketAddr)) {
        with_source(Nothing, limits, f);
    }

    /// Runs a server of `source` with `limits` for the length of `f`.
    fn with_source(source: impl Source, limits: Limits, f: impl FnOnce(SocketAddr)) {
        let server = Server::bind((Ipv4Addr::LOCALHOST, 0).into(), limits).unwrap();
        let addr = server.local_addr().unwrap();
        let metrics = Metrics::new(source, false);
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let serving = s.spawn(|| server.serve(&metrics, &stop));
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(addr)));
            stop.store(true, Ordering::Relaxed);
            serving.join().unwrap().unwrap();
            if let Err(panic) = done {
                std::panic::resume_unwind(panic);
            }
        });
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    /// Everything the server sends until it closes.
    fn read_all(stream: &mut TcpStream) -> String {
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        String::from_utf8(raw).unwrap()
    }

    /// The status of each response in `raw`, read one after the other by
    /// their `Content-Length`.
    fn statuses(mut raw: &str) -> Vec<&str> {
        let mut found = Vec::new();
        while let Some((head, rest)) = raw.split_once("\r\n\r\n") {
            let status = head.strip_prefix("HTTP/1.1 ").expect("a status line");
            found.push(&status[..3]);
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .expect("a Content-Length")
                .parse()
                .unwrap();
            // A HEAD answer has the length but no body.
            raw = rest.get(length..).unwrap_or_default();
        }
        found
    }

    #[test]
    fn keeps_the_connection_for_http11_and_counts_content_length() {
        with_server(quick(), |addr| {
            let mut s = connect(addr);
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).unwrap();
            let first = String::from_utf8_lossy(&buf[..n]).into_owned();
            let (head, body) = first.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(!head.contains("Connection: close"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(length, body.len());
            assert!(body.contains("xdpstat_scrape_errors_total 0"), "{body}");
            // The same connection takes another, which closes it.
            s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let rest = read_all(&mut s);
            assert_eq!(statuses(&rest), ["200"]);
            assert!(rest.contains("Connection: close\r\n"), "{rest}");
        });
    }

    #[test]
    fn pipelined_requests_stop_at_max_requests() {
        with_server(quick(), |addr| {
            let mut s = connect(addr);
            s.write_all(&b"GET /nope HTTP/1.1\r\n\r\n".repeat(10))
                .unwrap();
            let raw = read_all(&mut s);
            assert_eq!(statuses(&raw), ["404", "404", "404"], "{raw}");
            assert_eq!(raw.matches("Connection: close").count(), 1, "{raw}");
        });
    }

    #[test]
    fn http10_head_and_bare_newlines() {
        with_server(quick(), |addr| {
            let mut s = connect(addr);
            s.write_all(b"\r\nHEAD /metrics HTTP/1.0\nAccept: application/openmetrics-text\n\n")
                .unwrap();
            let raw = read_all(&mut s);
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert!(head.contains("Content-Type: application/openmetrics-text"));
            assert!(head.contains("Connection: close"), "{head}");
            assert!(!head.contains("Content-Length: 0\r"), "{head}");
            assert_eq!(body, "", "HEAD has no body");
        });
    }

    #[test]
    fn malformed_requests_get_an_error_and_a_close() {
        for (request, status) in [
            (&b"GARBAGE\r\n\r\n"[..], "400"),
            (b"GET /metrics HTTP/2.0\r\n\r\n", "505"),
            (b"GET /metrics HTTP/1.1\r\nBad header\r\n\r\n", "400"),
            (b"GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n", "400"),
            (b"GET /\xff HTTP/1.1\r\n\r\n", "400"),
            (
                b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
                "405",
            ),
        ] {
            with_server(quick(), |addr| {
                let mut s = connect(addr);
                s.write_all(request).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
                let raw = read_all(&mut s);
                assert_eq!(statuses(&raw), [status], "{request:?}: {raw}");
            });
        }
    }

    #[test]
    fn a_head_larger_than_max_head_gets_431() {
        with_server(quick(), |addr| {
            let mut s = connect(addr);
            let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(600));
            // The server may close before it has read all of it.
            let _ = s.write_all(big.as_bytes());
            let raw = read_all(&mut s);
            assert_eq!(statuses(&raw), ["431"], "{raw}");
        });
    }

    #[test]
    fn silence_closes_and_a_partial_head_gets_408() {
        with_server(quick(), |addr| {
            let started = Instant::now();
            let mut silent = connect(addr);
            let mut partial = connect(addr);
            partial.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
            assert_eq!(read_all(&mut silent), "");
            let raw = read_all(&mut partial);
            let took = started.elapsed();
            assert_eq!(statuses(&raw), ["408"], "{raw}");
            assert!(took >= Duration::from_millis(250), "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        });
    }

    #[test]
    fn a_client_that_does_not_read_is_dropped_after_the_write_timeout() {
        let limits = Limits {
            max_requests: u32::MAX,
            ..quick()
        };
        with_source(Wide, limits, |addr| {
            let s = connect(addr);
            let small: libc::c_int = 4096;
            // SAFETY: setsockopt on an open socket, with an int value.
            let ret = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUF,
                    std::ptr::from_ref(&small).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            assert_eq!(ret, 0);
            let mut s = s;
            // Far more answers than the socket buffers hold.
            s.write_all(&b"GET /metrics HTTP/1.1\r\n\r\n".repeat(1000))
                .unwrap();
            // Others are served meanwhile.
            thread::sleep(Duration::from_millis(100));
            let mut other = connect(addr);
            other
                .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            assert_eq!(statuses(&read_all(&mut other)), ["200"]);
            // By now the server gave up on the client that takes no
            // answers: reading gets what was buffered, then the close.
            thread::sleep(Duration::from_millis(500));
            let raw = read_all(&mut s);
            let answered = raw.matches("HTTP/1.1 200 OK").count();
            assert!(answered < 20, "{answered} answers");
        });
    }

    #[test]
    fn connections_beyond_the_limit_get_503() {
        let limits = Limits {
            max_connections: 2,
            request_timeout: Duration::from_secs(3),
            ..quick()
        };
        with_server(limits, |addr| {
            let held: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
            // Both are being served before the third comes.
            thread::sleep(Duration::from_millis(300));
            let mut third = connect(addr);
            let raw = read_all(&mut third);
            assert_eq!(statuses(&raw), ["503"], "{raw}");
            assert!(raw.contains("Retry-After: 1\r\n"), "{raw}");
            drop(held);
            // Their slots come back.
            thread::sleep(Duration::from_millis(300));
            let mut fourth = connect(addr);
            fourth
                .write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            assert_eq!(statuses(&read_all(&mut fourth)), ["200"]);
        });
    }

    #[test]
    fn stop_ends_idle_connections_soon() {
        let limits = Limits {
            request_timeout: Duration::from_secs(30),
            ..quick()
        };
        let server = Server::bind((Ipv4Addr::LOCALHOST, 0).into(), limits).unwrap();
        let addr = server.local_addr().unwrap();
        let metrics = Metrics::new(Nothing, false);
        let stop = AtomicBool::new(false);
        thread::scope(|s| {
            let serving = s.spawn(|| server.serve(&metrics, &stop));
            let _idle = connect(addr);
            thread::sleep(Duration::from_millis(100));
            let started = Instant::now();
            stop.store(true, Ordering::Relaxed);
            serving.join().unwrap().unwrap();
            assert!(started.elapsed() < Duration::from_secs(1));
        });
    }

    #[test]
    fn heads_end_at_the_first_empty_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
        assert_eq!(leading_blank_lines(b"\r\n\nGET"), 3);
        assert_eq!(origin_form("http://h:9435/metrics?x"), "/metrics?x");
        assert_eq!(origin_form("http://h:9435"), "/");
        assert_eq!(origin_form("/metrics"), "/metrics");
    }

    #[test]
    fn parses_what_the_router_needs() {
        let r = parse_head(
            b"GET /metrics HTTP/1.1\r\nAccept: text/plain\r\naccept: */*\r\nConnection: keep-alive, Close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/metrics");
        assert_eq!(r.accept.as_deref(), Some("text/plain, */*"));
        assert!(!r.keep_alive);
        assert!(!r.has_body);
        let r = parse_head(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(r.keep_alive && r.has_body);
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n")
                .unwrap_err()
                .status,
            400
        );
    }
}
