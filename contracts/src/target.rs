//! Which endpoints hookbus may POST to.
//!
//! A webhook platform lets strangers choose a URL the platform will call from inside its
//! network, so every hook target is checked twice: the URL when the hook is saved, and every
//! address its host resolves to when the deliverer connects (so DNS rebinding does not get
//! through). Loopback, private, link-local (cloud metadata), CGNAT, multicast and the other
//! reserved ranges are refused unless the operator allows private targets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// What the operator allows; from `HOOKBUS_ALLOW_HTTP` and `HOOKBUS_ALLOW_PRIVATE_TARGETS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_http: bool,
    pub allow_private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("`{0}` is not a valid absolute URL")]
    Unparseable(String),
    #[error("URL scheme `{0}` is not allowed: use https (http only with HOOKBUS_ALLOW_HTTP=true)")]
    Scheme(String),
    #[error("URL has no host")]
    NoHost,
    #[error("URL must not carry credentials")]
    Credentials,
    #[error("target {0} is a loopback, private or reserved address (allowed only with HOOKBUS_ALLOW_PRIVATE_TARGETS=true)")]
    Private(String),
}

impl TargetPolicy {
    /// Checks a hook URL as written: scheme, credentials, and a host that is a literal
    /// private address or a local name. Names are resolved at connect time, see
    /// [`TargetPolicy::check_ip`].
    pub fn check_url(&self, raw: &str) -> Result<Url, TargetError> {
        let url = Url::parse(raw).map_err(|_| TargetError::Unparseable(raw.to_owned()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(TargetError::Scheme(other.to_owned())),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::Credentials);
        }
        if self.allow_private {
            return url
                .host()
                .is_some()
                .then_some(url.clone())
                .ok_or(TargetError::NoHost);
        }
        match url.host() {
            None => return Err(TargetError::NoHost),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") || !name.contains('.') {
                    return Err(TargetError::Private(name));
                }
            }
        }
        Ok(url)
    }

    /// Checks one address the target resolved to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(TargetError::Private(ip.to_string()))
        }
    }
}

/// True for globally routable unicast addresses only.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved 240.0.0.0/4
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments, incl. Teredo
        || s[0] == 0x2002 // 6to4 wraps arbitrary IPv4 addresses
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard-only
        || (s[0] == 0x0064 && s[1] == 0xff9b && s[2] == 0x0001)) // local-use NAT64 64:ff9b:1::/48 (RFC 8215)
}

/// IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`) and NAT64 (`64:ff9b::/96`)
/// addresses reach an IPv4 host; they are judged by that host.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, _, _] if !ip.is_loopback() && !ip.is_unspecified() => Some(tail),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_http: false,
        allow_private: false,
    };

    #[test]
    fn public_https_urls_pass() {
        assert!(STRICT.check_url("https://example.com/hook").is_ok());
        assert!(STRICT.check_url("https://93.184.216.34:8443/x").is_ok());
        assert!(STRICT.check_url("https://[2606:4700::1111]/x").is_ok());
    }

    #[test]
    fn every_private_or_reserved_range_is_refused() {
        for url in [
            "https://127.0.0.1/",
            "https://127.1.2.3/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://240.0.0.1/",
            "https://198.18.0.1/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::a00:1]/",
            "https://[64:ff9b:1::808:808]/",
            "https://[2002:7f00:1::]/",
            "https://localhost/",
            "https://api.localhost/",
            "https://intranet/",
        ] {
            assert!(
                matches!(STRICT.check_url(url), Err(TargetError::Private(_))),
                "{url} passed"
            );
        }
    }

    #[test]
    fn scheme_and_credentials_are_checked() {
        assert!(matches!(
            STRICT.check_url("http://example.com/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            STRICT.check_url("ftp://example.com/"),
            Err(TargetError::Scheme(_))
        ));
        assert!(matches!(
            STRICT.check_url("not a url"),
            Err(TargetError::Unparseable(_))
        ));
        assert!(matches!(
            STRICT.check_url("https://u:p@example.com/"),
            Err(TargetError::Credentials)
        ));
        let open = TargetPolicy {
            allow_http: true,
            allow_private: true,
        };
        assert!(open.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.check_ip("10.1.2.3".parse().unwrap()).is_ok());
        assert!(STRICT.check_ip("10.1.2.3".parse().unwrap()).is_err());
    }
}
