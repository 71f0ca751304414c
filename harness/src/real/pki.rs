//! The certificates of a local control plane: one CA, the API server's serving
//! certificate, a client certificate per identity (the admin in `system:masters`, the
//! controller manager, the scheduler, and a kubelet per node as `system:node:<name>` in
//! `system:nodes`: the node authorizer treats a request as a node's only with both), and
//! the service-account signing key. Keys are ECDSA P-256 (rcgen's default, which every
//! Kubernetes component takes), written 0600. A leaf: it imports nothing of the crate.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM (PKCS#8) key.
    pub key: PathBuf,
}

/// The CA of one control plane and the files it issued, under one directory.
pub struct Pki {
    dir: PathBuf,
    ca: CertificateParams,
    ca_key: KeyPair,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Writes a file only its owner may read (a key, a kubeconfig holding a token).
pub(crate) fn write_private(path: &Path, text: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text)?;
    Ok(())
}

impl Pki {
    /// A new CA in `dir` (`ca.crt`, `ca.key`).
    pub fn new(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "trainride-kube-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let cert = ca.self_signed(&ca_key)?;
        std::fs::write(dir.join("ca.crt"), cert.pem())?;
        write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
        Ok(Self {
            dir: dir.to_owned(),
            ca,
            ca_key,
        })
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA key (the controller manager signs with it).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    fn issue(&self, file: &str, params: CertificateParams) -> anyhow::Result<Identity> {
        let key = KeyPair::generate()?;
        let issuer = Issuer::from_params(&self.ca, &self.ca_key);
        let cert = params.signed_by(&key, &issuer)?;
        let id = Identity {
            cert: self.dir.join(format!("{file}.crt")),
            key: self.dir.join(format!("{file}.key")),
        };
        std::fs::write(&id.cert, cert.pem())?;
        write_private(&id.key, key.serialize_pem().as_bytes())?;
        Ok(id)
    }

    /// A serving certificate for `names` (DNS names or IP addresses).
    pub fn server(
        &self,
        file: &str,
        common_name: &str,
        names: &[&str],
    ) -> anyhow::Result<Identity> {
        let mut p =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(file, p)
    }

    /// A client certificate: the user is the common name, each organization a group.
    pub fn client(&self, file: &str, user: &str, groups: &[&str]) -> anyhow::Result<Identity> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, user);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(file, p)
    }

    /// The service-account signing key pair (`sa.key`, `sa.pub`).
    pub fn service_account(&self) -> anyhow::Result<Identity> {
        let key = KeyPair::generate()?;
        let id = Identity {
            cert: self.dir.join("sa.pub"),
            key: self.dir.join("sa.key"),
        };
        std::fs::write(&id.cert, key.public_key_pem())?;
        write_private(&id.key, key.serialize_pem().as_bytes())?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificates_are_pem_and_keys_private() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path()).unwrap();
        let node = pki
            .client("node-1", "system:node:node-1", &["system:nodes"])
            .unwrap();
        let server = pki
            .server("apiserver", "kube-apiserver", &["localhost", "127.0.0.1"])
            .unwrap();
        let sa = pki.service_account().unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        for id in [&node, &server, &sa] {
            let mode = std::fs::metadata(&id.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", id.key.display());
            assert!(
                std::fs::read_to_string(&id.key)
                    .unwrap()
                    .contains("PRIVATE KEY")
            );
        }
        assert!(
            std::fs::read_to_string(&node.cert)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        assert!(
            std::fs::read_to_string(&sa.cert)
                .unwrap()
                .contains("BEGIN PUBLIC KEY")
        );
        assert!(
            std::fs::read_to_string(pki.ca_cert())
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }
}
