//! The rustls side of [`crate::tls`] (cargo feature `tls`, on by
//! default): the client configuration made from a URL's [`TlsOptions`]
//! and [`TlsStream`]. See tls.rs for what is verified and why ring.

use crate::remote::ByteStream;
use crate::tls::{show_fingerprint, TlsOptions, SYSTEM_ROOTS};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest certificate or key file read (a real bundle is a few hundred KiB).
const MAX_PEM: u64 = 4 << 20;

/// Reads a PEM file (a regular file of at most [`MAX_PEM`] bytes).
fn read_pem(what: &str, path: &Path) -> Result<(Vec<u8>, u32), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    let md = f
        .metadata()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if !md.is_file() || md.len() > MAX_PEM {
        return Err(format!(
            "{what} {}: not a regular file of at most {MAX_PEM} bytes",
            path.display()
        ));
    }
    let mut data = Vec::with_capacity(md.len() as usize);
    f.take(MAX_PEM)
        .read_to_end(&mut data)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    Ok((data, md.mode()))
}

fn certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let (data, _) = read_pem(what, path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts exactly the certificate with the pinned SHA-256 (and checks the
/// handshake's signature against its key).
#[derive(Debug)]
struct Pinned {
    fingerprint: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is {}, not the pinned {}",
                show_fingerprint(&got),
                show_fingerprint(&self.fingerprint)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The rustls configuration `opts` make, reading their files now. A
/// warning (`Some`) if the key file is readable by others.
pub fn client_config(opts: &TlsOptions) -> Result<(Arc<ClientConfig>, Option<String>), String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match opts.fingerprint {
        Some(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                fingerprint,
                provider: Arc::clone(&provider),
            })),
        None => {
            let mut roots = RootCertStore::empty();
            let (what, path) = match &opts.ca {
                Some(p) => ("ca", p.clone()),
                None => (
                    "system roots",
                    SYSTEM_ROOTS
                        .iter()
                        .map(PathBuf::from)
                        .find(|p| p.is_file())
                        .ok_or_else(|| {
                            format!(
                                "no ca= given and no system roots ({}): give ca=FILE or fingerprint=",
                                SYSTEM_ROOTS.join(", ")
                            )
                        })?,
                ),
            };
            let (added, _ignored) = roots.add_parsable_certificates(certs(what, &path)?);
            if added == 0 {
                return Err(format!(
                    "{what} {}: no usable CA certificate in it",
                    path.display()
                ));
            }
            builder.with_root_certificates(roots)
        }
    };
    let mut warning = None;
    let config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = certs("cert", cert)?;
            let (data, mode) = read_pem("key", key)?;
            if mode & 0o077 != 0 {
                warning = Some(format!(
                    "key {} has mode {:04o}: anyone in its group or everyone can read it (want 0600 or 0400)",
                    key.display(),
                    mode & 0o7777
                ));
            }
            let k = PrivateKeyDer::from_pem_slice(&data)
                .map_err(|e| format!("key {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, k)
                .map_err(|e| format!("cert {} / key {}: {e}", cert.display(), key.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok((Arc::new(config), warning))
}

/// A blocking TLS client connection over TCP.
pub struct TlsStream {
    conn: ClientConnection,
    tcp: TcpStream,
    /// Cipher-text bytes handed to the kernel on this connection.
    cipher_sent: u64,
    /// Plain-text bytes taken by [`Write::write`].
    plain_sent: u64,
    /// (plain, cipher) totals at the end of each write: once the server's
    /// TCP acknowledged `cipher` bytes, the first `plain` bytes are acknowledged.
    marks: VecDeque<(u64, u64)>,
    plain_acked: u64,
}

impl TlsStream {
    /// Runs the handshake on `tcp` (bounded by a timeout); the read
    /// timeout is then `read_timeout`.
    pub fn connect(
        mut tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
        read_timeout: Option<Duration>,
    ) -> io::Result<TlsStream> {
        let mut conn = ClientConnection::new(config, name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let write_timeout = tcp.write_timeout()?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let mut cipher_sent = 0u64;
        while conn.is_handshaking() {
            match conn.complete_io(&mut tcp) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS handshake: the server closed the connection",
                    ))
                }
                Ok((_, w)) => cipher_sent += w as u64,
                Err(e) => {
                    // The alert that says why, if it can still go.
                    let _ = conn.write_tls(&mut tcp);
                    let kind = match e.kind() {
                        io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut,
                        k => k,
                    };
                    return Err(io::Error::new(kind, format!("TLS handshake: {e}")));
                }
            }
        }
        tcp.set_read_timeout(read_timeout)?;
        tcp.set_write_timeout(write_timeout)?;
        Ok(TlsStream {
            conn,
            tcp,
            cipher_sent,
            plain_sent: 0,
            marks: VecDeque::new(),
            plain_acked: 0,
        })
    }

    /// Hands every pending TLS record to the kernel.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.cipher_sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the server sent, if anything, without blocking; false if
    /// it closed the connection, sent an alert or broke the protocol.
    fn poll_incoming(&mut self) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        loop {
            let mut fds = [PollFd::new(
                self.tcp.as_fd(),
                PollFlags::POLLIN | PollFlags::from_bits_retain(libc::POLLRDHUP),
            )];
            match poll(&mut fds, PollTimeout::ZERO) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
            match self.conn.read_tls(&mut self.tcp) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
            match self.conn.process_new_packets() {
                Ok(st) if st.peer_has_closed() => return false,
                Ok(st) => {
                    // A syslog server sends no data; drop any.
                    let mut sink = vec![0u8; st.plaintext_bytes_to_read()];
                    let _ = self.conn.reader().read(&mut sink);
                }
                Err(_) => {
                    let _ = self.flush_tls();
                    return false;
                }
            }
        }
    }

    /// Sends close_notify (best effort).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush_tls();
    }
}

impl Write for TlsStream {
    /// Takes plain text and returns once its TLS records are in the kernel.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.conn.writer().write(buf)?;
        self.flush_tls()?;
        self.plain_sent += n as u64;
        if self.marks.len() >= 4096 {
            // Bounded: merge the oldest two marks (conservative: the
            // merged one needs the later cipher total).
            if let (Some(_), Some(b)) = (self.marks.pop_front(), self.marks.pop_front()) {
                self.marks.push_front(b);
            }
        }
        self.marks.push_back((self.plain_sent, self.cipher_sent));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_tls()
    }
}

impl Read for TlsStream {
    /// Plain text from the server, waiting at most the read timeout
    /// (`WouldBlock` then); `Ok(0)` once the server closed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.conn.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.flush_tls();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Post-handshake messages may want an answer (key updates).
            self.flush_tls()?;
        }
    }
}

impl ByteStream for TlsStream {
    fn acked(&mut self, _taken: u64) -> io::Result<u64> {
        let outq = crate::remote::unacked(self.tcp.as_fd())?;
        let cipher_acked = self.cipher_sent.saturating_sub(outq);
        while let Some(&(plain, cipher)) = self.marks.front() {
            if cipher > cipher_acked {
                break;
            }
            self.plain_acked = plain;
            self.marks.pop_front();
        }
        Ok(self.plain_acked)
    }

    fn gone(&mut self) -> bool {
        !self.poll_incoming()
    }

    fn poll_read(&mut self, timeout: Duration) -> io::Result<bool> {
        match self.conn.process_new_packets() {
            Ok(st) if st.plaintext_bytes_to_read() == 0 && !st.peer_has_closed() => {}
            // Something to return at once (data, the end, an error).
            _ => return Ok(true),
        }
        crate::remote::readable(self.tcp.as_fd(), timeout)
    }

    fn shutdown(&mut self) {
        self.close();
    }

    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("logwrite-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let opts = TlsOptions {
            ca: Some(dir.join("nope.pem")),
            ..TlsOptions::default()
        };
        let e = client_config(&opts).expect_err("missing CA");
        assert!(e.contains("nope.pem") && e.contains("No such file"), "{e}");
        std::fs::write(dir.join("junk.pem"), "not pem").expect("write");
        let opts = TlsOptions {
            ca: Some(dir.join("junk.pem")),
            ..TlsOptions::default()
        };
        let e = client_config(&opts).expect_err("junk CA");
        assert!(e.contains("no PEM certificate"), "{e}");
        let opts = TlsOptions {
            ca: Some(dir.clone()),
            ..TlsOptions::default()
        };
        assert!(client_config(&opts)
            .expect_err("a directory")
            .contains("regular file"));
        let pinned = TlsOptions {
            fingerprint: Some([1; 32]),
            cert: Some(dir.join("c.pem")),
            key: Some(dir.join("k.pem")),
            ..TlsOptions::default()
        };
        let e = client_config(&pinned).expect_err("missing client cert");
        assert!(e.starts_with("cert "), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
