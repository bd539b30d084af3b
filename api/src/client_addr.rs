//! The client's address: the socket's peer, or, when the peer is a configured trusted proxy,
//! the address that proxy reports in `X-Forwarded-For`.
//!
//! A forwarded header from anyone else is ignored: a client choosing its own address would
//! escape every per-address limit. Behind a chain of trusted proxies the client is the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (the entries to its
//! left were written by the client and prove nothing).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The header a trusted proxy sets.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The address a request is attributed to, for per-address limits and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The bucket of requests whose peer is unknown (a server run without connection info).
    pub const UNKNOWN: ClientAddr = ClientAddr(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
}

/// Which client `peer` stands for, given the proxies we trust and the request's headers.
pub fn resolve(peer: Option<IpAddr>, trusted: &[IpAddr], headers: &HeaderMap) -> ClientAddr {
    let Some(peer) = peer else {
        return ClientAddr::UNKNOWN;
    };
    if !trusted.contains(&canonical(peer)) {
        return ClientAddr(canonical(peer));
    }
    // Every X-Forwarded-For header, in order, as one list; walk it from the right.
    let hops: Vec<&str> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&canonical(ip)) => continue,
            Ok(ip) => return ClientAddr(canonical(ip)),
            // Garbage where an address should be: the last trusted hop is all we know.
            Err(_) => break,
        }
    }
    ClientAddr(canonical(peer))
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as the IPv4 address they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: resolves the client's address once and stores it in the request's extensions.
pub async fn attach(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = resolve(peer, &state.config().trusted_proxies, request.headers());
    request.extensions_mut().insert(client);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr::UNKNOWN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peers_cannot_choose_their_address() {
        let h = xff(&["9.9.9.9"]);
        assert_eq!(
            resolve(Some(ip("1.2.3.4")), &[], &h),
            ClientAddr(ip("1.2.3.4"))
        );
        let trusted = [ip("10.0.0.1")];
        assert_eq!(
            resolve(Some(ip("1.2.3.4")), &trusted, &h),
            ClientAddr(ip("1.2.3.4"))
        );
    }

    #[test]
    fn trusted_proxies_report_the_rightmost_untrusted_hop() {
        let trusted = [ip("10.0.0.1"), ip("10.0.0.2")];
        // The client wrote "6.6.6.6" itself; the first proxy saw 5.5.5.5.
        let h = xff(&["6.6.6.6, 5.5.5.5", "10.0.0.2"]);
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &trusted, &h),
            ClientAddr(ip("5.5.5.5"))
        );
        // No header, or garbage: the proxy itself.
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &trusted, &HeaderMap::new()),
            ClientAddr(ip("10.0.0.1"))
        );
        assert_eq!(
            resolve(Some(ip("10.0.0.1")), &trusted, &xff(&["not-an-ip"])),
            ClientAddr(ip("10.0.0.1"))
        );
        assert_eq!(
            resolve(
                Some(ip("::ffff:10.0.0.1")),
                &trusted,
                &xff(&["::ffff:7.7.7.7"])
            ),
            ClientAddr(ip("7.7.7.7"))
        );
    }
}
