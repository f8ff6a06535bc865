//! TLS for `tls://` (RFC 5425) and `relp+tls://`: the options of a URL.
//! The rustls client configuration they make (read from the files at each
//! connection, so a renewed certificate is picked up without a restart)
//! and `TlsStream`, a blocking TLS connection that knows how much of the
//! plain text it took the server's TCP has acknowledged, are in
//! tlsconn.rs, built with the cargo feature `tls` (on by default; without
//! it logwrite is 1.21 MiB smaller and refuses TLS URLs).
//!
//! Crypto provider: rustls' `ring`. `aws-lc-rs` (rustls' default) builds
//! AWS-LC with cmake and a C toolchain for every target, which the static
//! musl build does not have; ring needs only a C compiler, which any Rust
//! toolchain that links C already has. Both give the same TLS 1.2 and 1.3
//! suites here; no OpenSSL is linked.
//!
//! Verification: the server's certificate chain against `ca=FILE` (or the
//! system's roots), and its name against `name=` or the URL's host (a DNS
//! name, or an IP address which must then be in the certificate). With
//! `fingerprint=SHA256:HEX` the certificate must instead be exactly that
//! one (its SHA-256), whoever signed it; the handshake signature is still
//! checked against its key. There is no option to turn verification off.

use rustls_pki_types::ServerName;
use std::path::PathBuf;

/// Where the system's roots are looked for without `ca=` (Debian and
/// Alpine, Fedora, others), first found wins.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub const SYSTEM_ROOTS: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// What a TLS URL gets from a logwrite built without the feature.
pub const NO_TLS: &str = "this logwrite was built without TLS (cargo feature `tls`)";

/// The TLS options of a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// `ca=FILE`: PEM bundle of the authorities to trust.
    pub ca: Option<PathBuf>,
    /// `cert=FILE`: our certificate chain (PEM), for mutual TLS.
    pub cert: Option<PathBuf>,
    /// `key=FILE`: its private key (PEM: PKCS#8, SEC1 or PKCS#1).
    pub key: Option<PathBuf>,
    /// `name=DNSNAME`: the name to verify (default: the URL's host).
    pub name: Option<String>,
    /// `fingerprint=SHA256:HEX`: the server's certificate, pinned.
    pub fingerprint: Option<[u8; 32]>,
}

impl TlsOptions {
    /// True if `key` is one of the TLS options.
    pub fn is_option(key: &str) -> bool {
        matches!(key, "ca" | "cert" | "key" | "name" | "fingerprint")
    }

    /// Sets option `key` (one that [`TlsOptions::is_option`] accepts) to `v`.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        let path = || {
            if v.is_empty() {
                Err(format!("{key}= needs a file name"))
            } else {
                Ok(Some(PathBuf::from(v)))
            }
        };
        match key {
            "ca" => self.ca = path()?,
            "cert" => self.cert = path()?,
            "key" => self.key = path()?,
            "name" => {
                ServerName::try_from(v).map_err(|_| format!("name={v:?} is not a DNS name"))?;
                self.name = Some(v.to_owned());
            }
            "fingerprint" => self.fingerprint = Some(parse_fingerprint(v)?),
            _ => return Err(format!("unknown TLS option {key:?}")),
        }
        Ok(())
    }

    /// Checks the options that go together.
    pub fn check(&self) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                Err("cert= needs key= (the client certificate's private key)".into())
            }
            (None, Some(_)) => Err("key= needs cert= (the client certificate)".into()),
            _ if self.ca.is_some() && self.fingerprint.is_some() => {
                Err("give ca= or fingerprint=, not both (a pin replaces the authorities)".into())
            }
            _ => Ok(()),
        }
    }

    /// The name the server's certificate must hold: `name=`, else `host`
    /// (a DNS name or an IP address, brackets removed).
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, String> {
        let h = self.name.as_deref().unwrap_or(host);
        let h = h.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(h.to_owned())
            .map_err(|_| format!("{h:?} is neither a DNS name nor an IP address (give name=)"))
    }
}

/// `SHA256:` followed by 64 hex digits, optionally in pairs separated by `:`
/// (as `openssl x509 -fingerprint -sha256` prints them).
pub fn parse_fingerprint(v: &str) -> Result<[u8; 32], String> {
    let bad = || format!("fingerprint={v:?}: want SHA256: and 64 hex digits");
    let hex = v
        .strip_prefix("SHA256:")
        .or_else(|| v.strip_prefix("sha256:"))
        .ok_or_else(bad)?;
    let digits: String = hex.chars().filter(|&c| c != ':').collect();
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(digits.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
            .map_err(|_| bad())?;
    }
    Ok(out)
}

/// `SHA256:AA:BB:...`, as `openssl x509 -fingerprint -sha256` prints it.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub fn show_fingerprint(fp: &[u8]) -> String {
    let hex: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
    format!("SHA256:{}", hex.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let mut o = TlsOptions::default();
        for (k, v) in [
            ("ca", "/etc/ca.pem"),
            ("cert", "/c.pem"),
            ("key", "/k.pem"),
            ("name", "logs.example.com"),
        ] {
            assert!(TlsOptions::is_option(k));
            o.set(k, v).expect(k);
        }
        assert_eq!(o.check(), Ok(()));
        assert!(o.set("name", "not a name!").is_err());
        assert!(o.set("ca", "").is_err());
        assert!(!TlsOptions::is_option("format"));
        let only_cert = TlsOptions {
            cert: Some("/c".into()),
            ..TlsOptions::default()
        };
        assert!(only_cert.check().is_err());
        let both = TlsOptions {
            ca: Some("/c".into()),
            fingerprint: Some([0; 32]),
            ..TlsOptions::default()
        };
        assert!(both.check().is_err());
        assert_eq!(
            o.server_name("10.0.0.1").expect("name"),
            ServerName::try_from("logs.example.com").expect("dns")
        );
        let plain = TlsOptions::default();
        assert!(matches!(
            plain.server_name("[::1]").expect("ip"),
            ServerName::IpAddress(_)
        ));
        assert!(plain.server_name("a b").is_err());
    }

    #[test]
    fn fingerprints() {
        let hex = "AB".repeat(32);
        let want = [0xAB; 32];
        assert_eq!(parse_fingerprint(&format!("SHA256:{hex}")), Ok(want));
        let colons = show_fingerprint(&want);
        assert_eq!(parse_fingerprint(&colons), Ok(want));
        assert_eq!(parse_fingerprint(&colons.to_lowercase()), Ok(want));
        for bad in [
            "",
            "SHA1:AB",
            &format!("SHA256:{}", "AB".repeat(31)),
            &format!("SHA256:{}zz", "AB".repeat(31)),
            &format!("SHA256:{}é", "A".repeat(63)),
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }
}
