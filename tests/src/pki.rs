//! Certificates for the TLS tests, made with the `openssl` command: a
//! certificate authority, and server and client certificates it signs
//! (ECDSA P-256, valid for 30 days, SANs as asked).

use crate::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// True if the `openssl` command is there.
pub fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Cert {
    /// `SHA256:AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint(&self) -> String {
        let out = openssl(&[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            &self.cert.display().to_string(),
        ]);
        // "sha256 Fingerprint=AB:CD:..."
        let fp = out.trim().rsplit_once('=').expect("fingerprint").1;
        format!("SHA256:{fp}")
    }
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl {args:?}: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory of certificates.
pub struct Pki {
    pub dir: TempDir,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: TempDir::new("pki"),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A self-signed certificate authority called `name`.
    pub fn ca(&self, name: &str) -> Cert {
        let (cert, key) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        );
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        private(Path::new(&key));
        Cert {
            cert: cert.into(),
            key: key.into(),
        }
    }

    /// A certificate `name` signed by `ca`, for `sans` (`DNS:localhost,IP:127.0.0.1`),
    /// good for servers and clients.
    pub fn issue(&self, ca: &Cert, name: &str, sans: &str) -> Cert {
        self.issue_for_days(ca, name, sans, 30)
    }

    /// [`Pki::issue`], valid for `days` from now (`-1`: expired since a
    /// day before it was made).
    pub fn issue_for_days(&self, ca: &Cert, name: &str, sans: &str, days: i32) -> Cert {
        let (cert, key, csr, ext) = (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.csr")),
            self.path(&format!("{name}.ext")),
        );
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={sans}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n"
            ),
        )
        .expect("write extensions");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca.cert.display().to_string(),
            "-CAkey",
            &ca.key.display().to_string(),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            &days.to_string(),
            "-extfile",
            &ext,
        ]);
        private(Path::new(&key));
        Cert {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

fn private(key: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}
