//! A TCP proxy in front of PostgreSQL that reads what clients send: which
//! statements they execute (by SQL text, whether prepared or simple), how
//! many exchanges they end (each `Sync` or simple `Query` is answered by the
//! server's `ReadyForQuery`) and how many statements they prepare. It lets
//! [`crate::verify`] compare the contenders on what they actually send.
//!
//! Started with a latency ([`Proxy::with_latency`]), it holds every answer
//! of the server back for that long, as a distant server would, and also
//! counts the client's real round trips: a message starts a new one when
//! an answer reached the client since its previous message and it came at
//! least half the latency after that message. A client that waits for an
//! answer before it sends again meets both; statements it pipelines leave
//! together and meet neither. The crate's tests include this file to count
//! the store's round trips.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// Protocol codes that precede the real startup message (SSLRequest,
/// GSSENCRequest); the server answers them with one byte.
const PRE_STARTUP_CODES: [i32; 2] = [80_877_103, 80_877_104];

/// What the clients sent since the last [`Proxy::take`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    /// The SQL of every statement executed, in order: the text a `Bind`
    /// names through its prepared statement, or a simple query's text.
    pub statements: Vec<String>,
    /// `Sync` and simple `Query` messages.
    pub round_trips: u64,
    /// The round trips the client waited for: groups of client messages
    /// with an answer passed on between two groups, and at least half the
    /// proxy's latency. Counted only when the proxy has a latency.
    pub flights: u64,
    /// The SQL of every statement prepared (`Parse`), in order.
    pub prepared: Vec<String>,
}

/// The proxy: listens on an ephemeral port of 127.0.0.1 and relays every
/// connection to `upstream`.
pub struct Proxy {
    address: SocketAddr,
    traffic: Arc<Mutex<Traffic>>,
    listener: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts relaying to `upstream` (`host:port`), holding each chunk the
    /// server sends back for `latency` before passing it on, and counting
    /// [`Traffic::flights`].
    ///
    /// Fails when no local port can be bound.
    pub async fn with_latency(upstream: String, latency: Duration) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let shared = Arc::clone(&traffic);
        let listener = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let traffic = Arc::clone(&shared);
                tokio::spawn(async move {
                    // A relay ends when either side closes; nothing to report.
                    let _ = relay(client, &upstream, traffic, latency).await;
                });
            }
        });
        Ok(Proxy {
            address,
            traffic,
            listener,
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// What was sent since the last call, and starts counting afresh.
    pub fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn relay(
    client: TcpStream,
    upstream: &str,
    traffic: Arc<Mutex<Traffic>>,
    latency: Duration,
) -> io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_in, mut client_out) = client.into_split();
    let (mut server_in, server_out) = server.into_split();
    let answered = Arc::new(AtomicU64::new(0));
    let passed_on = Arc::clone(&answered);
    let answers = tokio::spawn(async move {
        if latency.is_zero() {
            tokio::io::copy(&mut server_in, &mut client_out).await
        } else {
            delayed_copy(server_in, client_out, latency, passed_on).await
        }
    });
    let result = inspect(client_in, server_out, &traffic, latency, &answered).await;
    answers.abort();
    result
}

/// Copies what the server sends to the client, each chunk `latency` after
/// it arrived (so chunks keep their order and spacing), counting the chunks
/// passed on in `answered`.
async fn delayed_copy(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    latency: Duration,
    answered: Arc<AtomicU64>,
) -> io::Result<u64> {
    let (chunks, mut queued) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        let mut copied = 0_u64;
        while let Some((arrived, chunk)) = queued.recv().await {
            tokio::time::sleep_until(arrived + latency).await;
            to.write_all(&chunk).await?;
            answered.fetch_add(1, Ordering::SeqCst);
            copied += chunk.len() as u64;
        }
        io::Result::Ok(copied)
    });
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 || chunks.send((Instant::now(), buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(chunks);
    writer.await.unwrap_or(Ok(0))
}

/// Forwards the client's messages one by one, recording each.
async fn inspect(
    from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    traffic: &Mutex<Traffic>,
    latency: Duration,
    answered: &AtomicU64,
) -> io::Result<()> {
    let mut from = BufReader::new(from);
    // Startup messages carry no type byte.
    loop {
        let length = from.read_i32().await?;
        let body = read_body(&mut from, length).await?;
        to.write_i32(length).await?;
        to.write_all(&body).await?;
        let code = body
            .get(..4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if !code.is_some_and(|c| PRE_STARTUP_CODES.contains(&c)) {
            break;
        }
    }
    let mut prepared: HashMap<String, String> = HashMap::new();
    let mut last_sent: Option<(Instant, u64)> = None;
    loop {
        let tag = match from.read_u8().await {
            Ok(tag) => tag,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        if !latency.is_zero() {
            let now = (Instant::now(), answered.load(Ordering::SeqCst));
            let waited =
                last_sent.is_none_or(|(at, answers)| now.1 != answers && now.0 - at >= latency / 2);
            if waited {
                traffic
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .flights += 1;
            }
            last_sent = Some(now);
        }
        let length = from.read_i32().await?;
        let body = read_body(&mut from, length).await?;
        record(tag, &body, &mut prepared, traffic);
        let mut message = Vec::with_capacity(body.len() + 5);
        message.push(tag);
        message.extend_from_slice(&length.to_be_bytes());
        message.extend_from_slice(&body);
        to.write_all(&message).await?;
    }
}

async fn read_body(from: &mut BufReader<OwnedReadHalf>, length: i32) -> io::Result<Vec<u8>> {
    let size = usize::try_from(length - 4)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative message length"))?;
    let mut body = vec![0; size];
    from.read_exact(&mut body).await?;
    Ok(body)
}

/// Splits the NUL-terminated strings at the start of a message body.
fn strings(body: &[u8], count: usize) -> Vec<String> {
    body.split(|b| *b == 0)
        .take(count)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn record(tag: u8, body: &[u8], prepared: &mut HashMap<String, String>, traffic: &Mutex<Traffic>) {
    let mut traffic = traffic.lock().unwrap_or_else(PoisonError::into_inner);
    match tag {
        b'P' => {
            if let [name, sql] = strings(body, 2).as_slice() {
                prepared.insert(name.clone(), sql.clone());
                traffic.prepared.push(sql.clone());
            }
        }
        b'B' => {
            if let [_portal, name] = strings(body, 2).as_slice() {
                let sql = prepared
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("<unknown statement {name:?}>"));
                traffic.statements.push(sql);
            }
        }
        b'Q' => {
            traffic.statements.extend(strings(body, 1));
            traffic.round_trips += 1;
        }
        b'S' => traffic.round_trips += 1,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, parts: &[&str]) -> (u8, Vec<u8>) {
        let mut body = Vec::new();
        for part in parts {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        (tag, body)
    }

    #[test]
    fn binds_are_recorded_as_the_sql_they_execute() {
        let traffic = Mutex::new(Traffic::default());
        let mut prepared = HashMap::new();
        for (tag, body) in [
            message(b'Q', &["BEGIN"]),
            message(b'P', &["s1", "SELECT 1"]),
            message(b'S', &[]),
            message(b'B', &["", "s1"]),
            message(b'E', &[""]),
            message(b'S', &[]),
        ] {
            record(tag, &body, &mut prepared, &traffic);
        }
        let traffic = traffic.into_inner().unwrap();
        assert_eq!(traffic.statements, ["BEGIN", "SELECT 1"]);
        assert_eq!(traffic.round_trips, 3);
        assert_eq!(traffic.prepared, ["SELECT 1"]);
    }
}
