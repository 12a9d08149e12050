//! What an operator watches: a server's metrics endpoint and `status`,
//! which change as the server works (read until they say what is
//! awaited, within [`FAILSAFE`]).

use std::time::Instant;

use crate::{Server, FAILSAFE};

impl Server {
    /// `GET path` from its metrics endpoint: the status line and the body.
    pub fn scrape(&self, path: &str) -> (String, String) {
        use std::io::{Read as _, Write as _};
        let addr = self.metrics.expect("the server was started with --metrics");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect to the metrics");
        stream.set_read_timeout(Some(FAILSAFE)).expect("timeout");
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head.lines().next().unwrap_or_default().to_string();
        (status, body.to_string())
    }
}

/// Calls `read` every 50 ms until it gives something, for at most
/// [`FAILSAFE`]; panics with `what` and the last thing read.
pub fn read_until<T>(what: &str, mut read: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match read() {
            Ok(found) => return found,
            Err(last) if start.elapsed() > FAILSAFE => {
                panic!("{what} not seen within {FAILSAFE:?}; last read:\n{last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
        }
    }
}

/// The value of the metric `name` (a line `name VALUE`) in a scrape.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
