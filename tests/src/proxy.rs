//! A counting TCP proxy in front of PostgreSQL, on 127.0.0.1: it forwards bytes unchanged and
//! counts the server's `ReadyForQuery` messages. Every client request cycle (a simple query,
//! an extended-protocol `Sync`, a pool's liveness ping) ends with exactly one, so the count is
//! the number of network round trips, measured rather than assumed.

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
        let counter = ready.clone();
        let frozen = Arc::new(AtomicBool::new(false));
        let freeze = frozen.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                let freeze = freeze.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = pipe(client, server, counter, freeze).await;
                    }
                });
            }
        });
        Ok(Self {
            port,
            ready,
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
}

impl Drop for RoundTripProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    ready: Arc<AtomicU64>,
    frozen: Arc<AtomicBool>,
) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
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
            ready.fetch_add(seen, Ordering::SeqCst);
        }
        cw.write_all(&buf[..n]).await?;
    }
    let _ = cw.shutdown().await;
    up.abort();
    Ok(())
}

/// Splits the server's byte stream into protocol messages (a type byte, then a big-endian
/// length that counts itself) and counts those of type `Z` (ReadyForQuery).
#[derive(Debug, Default)]
pub struct MessageCounter {
    header: Vec<u8>,
    skip: usize,
}

impl MessageCounter {
    /// Consumes a chunk; returns how many `ReadyForQuery` messages started in it.
    pub fn feed(&mut self, mut chunk: &[u8]) -> u64 {
        let mut seen = 0;
        while !chunk.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                self.skip -= n;
                chunk = &chunk[n..];
                continue;
            }
            let need = 5 - self.header.len();
            let n = need.min(chunk.len());
            self.header.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.header.len() == 5 {
                if self.header[0] == b'Z' {
                    seen += 1;
                }
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]) as usize;
                self.skip = len.saturating_sub(4);
                self.header.clear();
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::MessageCounter;

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
