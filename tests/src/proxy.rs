//! A counting TCP proxy in front of PostgreSQL, on 127.0.0.1: it forwards bytes unchanged and
//! counts the server's `ReadyForQuery` messages. Every client request cycle (a simple query,
//! an extended-protocol `Sync`, a pool's liveness ping) ends with exactly one, so the count is
//! the number of request cycles, measured rather than assumed.
//!
//! A client that pipelines (writes several request cycles before reading the answers) waits
//! for the network once for all of them, so the proxy also counts **waits**: the request
//! cycles (`Query`, `Sync`, the startup) a client sends while every earlier cycle on its
//! connection has been answered. Without pipelining waits equal round trips; a pipeline of
//! three cycles written together counts one wait and three round trips.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running proxy; stops accepting when dropped.
pub struct RoundTripProxy {
    port: u16,
    ready: Arc<AtomicU64>,
    waits: Arc<AtomicU64>,
    frozen: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl RoundTripProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = listener.local_addr()?.port();
        let ready = Arc::new(AtomicU64::new(0));
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        let waits = Arc::new(AtomicU64::new(0));
        let counters = Counters {
            ready: ready.clone(),
            waits: waits.clone(),
        };
        let frozen = Arc::new(AtomicBool::new(false));
        let freeze = frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = counters.clone();
                let freeze = freeze.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = pipe(client, server, counters, freeze).await;
                    }
                });
            }
        });
        Ok(Self {
            port,
            ready,
            waits,
            frozen,
            accept,
        })
    }

    /// `url` (a `postgres://` URL of the upstream) rewritten to go through the proxy, with TLS
    /// negotiation off so the server's stream is plain protocol messages from the first byte.
    pub fn url(&self, url: &str, upstream_port: u16) -> String {
        let rewritten = url.replacen(
            &format!("127.0.0.1:{upstream_port}"),
            &format!("127.0.0.1:{}", self.port),
            1,
        );
        let sep = if rewritten.contains('?') { '&' } else { '?' };
        format!("{rewritten}{sep}sslmode=disable")
    }

    /// From now on the server's bytes are read and dropped, on every connection: the client's
    /// connection stays open and hears nothing, like a half-open TCP connection.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    /// `ReadyForQuery` messages seen so far, over all connections.
    pub fn round_trips(&self) -> u64 {
        self.ready.load(Ordering::SeqCst)
    }

    /// Waits so far, over all connections: request cycles sent while the connection had no
    /// unanswered one (see the module documentation).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::SeqCst)
    }
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The proxy's counters, shared by every connection.
#[derive(Clone)]
struct Counters {
    ready: Arc<AtomicU64>,
    waits: Arc<AtomicU64>,
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    counters: Counters,
    frozen: Arc<AtomicBool>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let Counters { ready, waits } = counters;
    // Request cycles of this connection not yet answered by a `ReadyForQuery`.
    let outstanding = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let unanswered = outstanding.clone();
    let up = tokio::spawn(async move {
        let mut cycles = CycleCounter::default();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            for _ in 0..cycles.feed(&buf[..n]) {
                if unanswered.fetch_add(1, Ordering::SeqCst) <= 0 {
                    waits.fetch_add(1, Ordering::SeqCst);
                }
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    });
    let mut counter = MessageCounter::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sr.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if frozen.load(Ordering::SeqCst) {
            continue;
        }
        let seen = counter.feed(&buf[..n]);
        if seen > 0 {
            // Counted before the client can see the answer and send its next request.
            outstanding.fetch_sub(seen as i64, Ordering::SeqCst);
            ready.fetch_add(seen, Ordering::SeqCst);
        }
        cw.write_all(&buf[..n]).await?;
    }
    let _ = cw.shutdown().await;
    up.abort();
    Ok(())
}

/// Splits a protocol byte stream into messages: a type byte, then a big-endian length that
/// counts itself; a client's stream starts with untyped startup-phase messages (a length, then
/// a code).
#[derive(Debug, Default)]
struct Splitter {
    /// Whether typed messages have begun (always, for the server's stream).
    typed: bool,
    header: Vec<u8>,
    skip: usize,
}

/// The start of one message.
enum Header {
    /// A typed message with this type byte.
    Typed(u8),
    /// A startup-phase message with this code.
    Startup(u32),
}

impl Splitter {
    /// Consumes a chunk, calling `on` for each message header that completes in it.
    fn feed(&mut self, mut chunk: &[u8], mut on: impl FnMut(&mut Self, Header)) {
        while !chunk.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                self.skip -= n;
                chunk = &chunk[n..];
                continue;
            }
            let header_len = if self.typed { 5 } else { 8 };
            let n = (header_len - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.header.len() < header_len {
                continue;
            }
            let h = std::mem::take(&mut self.header);
            let (len, header) = if self.typed {
                (
                    u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize,
                    Header::Typed(h[0]),
                )
            } else {
                let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                (
                    len.saturating_sub(4),
                    Header::Startup(u32::from_be_bytes([h[4], h[5], h[6], h[7]])),
                )
            };
            self.skip = len.saturating_sub(4);
            on(self, header);
        }
    }
}

/// Counts the `ReadyForQuery` (`Z`) messages of the server's stream.
#[derive(Debug)]
pub struct MessageCounter(Splitter);

impl Default for MessageCounter {
    fn default() -> Self {
        Self(Splitter {
            typed: true,
            ..Splitter::default()
        })
    }
}

impl MessageCounter {
    /// Consumes a chunk; returns how many `ReadyForQuery` messages started in it.
    pub fn feed(&mut self, chunk: &[u8]) -> u64 {
        let mut seen = 0;
        self.0.feed(chunk, |_, h| {
            if matches!(h, Header::Typed(b'Z')) {
                seen += 1;
            }
        });
        seen
    }
}

/// Counts the request cycles of a client's stream: the startup message (an `SSLRequest` or
/// `GSSENCRequest` before it is answered by one byte, not a cycle), then every `Query` (`Q`)
/// and `Sync` (`S`).
#[derive(Debug, Default)]
pub struct CycleCounter(Splitter);

impl CycleCounter {
    /// Consumes a chunk; returns how many request cycles ended in it.
    pub fn feed(&mut self, chunk: &[u8]) -> u64 {
        let mut seen = 0;
        self.0.feed(chunk, |splitter, h| match h {
            Header::Typed(b'Q' | b'S') => seen += 1,
            Header::Typed(_) => {}
            // 80877103: SSLRequest, 80877104: GSSENCRequest (the startup follows).
            Header::Startup(80_877_103 | 80_877_104) => {}
            Header::Startup(_) => {
                splitter.typed = true;
                seen += 1;
            }
        });
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::{CycleCounter, MessageCounter};

    #[test]
    fn counts_request_cycles_from_the_startup_on() {
        let mut stream = Vec::new();
        // SSLRequest, then a startup message with one parameter.
        stream.extend(8u32.to_be_bytes());
        stream.extend(80_877_103u32.to_be_bytes());
        let params = b"user\0u\0\0";
        stream.extend(((8 + params.len()) as u32).to_be_bytes());
        stream.extend(196_608u32.to_be_bytes());
        stream.extend(params);
        stream.extend(msg(b'p', b"secret\0"));
        stream.extend(msg(b'Q', b"BEGIN\0"));
        stream.extend(msg(b'P', b"\0SELECT 'QS'\0\0\0"));
        stream.extend(msg(b'B', &[0u8; 10]));
        stream.extend(msg(b'E', &[0u8; 5]));
        stream.extend(msg(b'S', b""));
        for split in 1..stream.len() {
            let mut c = CycleCounter::default();
            let total = c.feed(&stream[..split]) + c.feed(&stream[split..]);
            assert_eq!(total, 3, "split at {split}");
        }
    }

    fn msg(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t];
        v.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn counts_ready_for_query_across_chunk_boundaries() {
        let mut stream = msg(b'C', b"SELECT 1\0");
        stream.extend(msg(b'Z', b"I"));
        stream.extend(msg(b'D', &[0u8; 300]));
        stream.extend(msg(b'Z', b"T"));
        // A 'Z' byte inside a body must not count.
        stream.extend(msg(b'D', b"ZZZZZZZ"));
        for split in 1..stream.len() {
            let mut c = MessageCounter::default();
            let total = c.feed(&stream[..split]) + c.feed(&stream[split..]);
            assert_eq!(total, 2, "split at {split}");
        }
        let mut c = MessageCounter::default();
        let total: u64 = stream.chunks(1).map(|b| c.feed(b)).sum();
        assert_eq!(total, 2);
    }
}
