//! TLS of the server and its accept loop: [`server_tls_config`] builds a rustls server
//! configuration on the aws-lc-rs provider offering X25519MLKEM768 (hybrid ML-KEM-768, the
//! standardised Kyber768) first and X25519 second, or the hybrid group alone
//! (`--pq-only`); [`serve_connections`] accepts TCP connections, completes the handshake
//! within a time limit (slow clients lose their connection, not a worker), logs and counts
//! the negotiated group, and hands each connection to hyper with that group attached to
//! every request ([`ConnInfo`]).

use crate::metrics::Metrics;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a request knows about its connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The negotiated key-exchange group (`X25519MLKEM768`, `X25519`), `None` without TLS.
    pub tls_group: Option<String>,
    pub peer: std::net::SocketAddr,
}

/// A rustls server configuration from PEM files.
pub fn server_tls_config(
    cert: &Path,
    key: &Path,
    pq_only: bool,
) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("private key {}: {e}", key.display()))?;
    let mut provider: CryptoProvider = qstore_cluster::served::pq_provider();
    if pq_only {
        provider.kx_groups = vec![rustls::crypto::aws_lc_rs::kx_group::X25519MLKEM768];
    }
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Write a new certificate authority and a server certificate it signed for `names`
/// (host names or IP addresses) into `dir`: `ca.pem` (give it to clients as `--ca-cert`),
/// `cert.pem` and `key.pem` (the server's). For trying the server out and for tests; a
/// site's own CA is better for anything that lasts. Returns the three paths.
pub fn write_self_signed(
    dir: &Path,
    names: &[String],
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf), String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let err = |e: rcgen::Error| format!("certificate generation: {e}");
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "qstore serve local CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = KeyPair::generate().map_err(err)?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(err)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "qstore serve");
    let cert = leaf.signed_by(&key, &issuer).map_err(err)?;
    let (ca_p, cert_p, key_p) = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    let write =
        |p: &Path, s: String| std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()));
    write(&ca_p, ca_cert.pem())?;
    write(&cert_p, cert.pem())?;
    write(&key_p, key.serialize_pem())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key_p, std::fs::Permissions::from_mode(0o600));
    }
    Ok((ca_p, cert_p, key_p))
}

/// Time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub handshake: Duration,
    pub header_read: Duration,
}

/// Accept connections on `listener` until `stop` fires, serving `app` on each.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    metrics: Arc<Metrics>,
    limits: ConnLimits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, metrics) = (acceptor.clone(), app.clone(), metrics.clone());
        tokio::spawn(async move {
            metrics.connections.fetch_add(1, Ordering::Relaxed);
            match acceptor {
                Some(acc) => match tokio::time::timeout(limits.handshake, acc.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let group = stream
                            .get_ref()
                            .1
                            .negotiated_key_exchange_group()
                            .map(|g| format!("{:?}", g.name()))
                            .unwrap_or_else(|| "none".into());
                        tracing::info!(%peer, group = %group, "TLS connection");
                        metrics.handshake(&group);
                        let info = ConnInfo {
                            tls_group: Some(group),
                            peer,
                        };
                        serve_one(stream, app, info, limits).await;
                    }
                    Ok(Err(e)) => {
                        metrics.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                    }
                    Err(_) => {
                        metrics.handshake_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(%peer, "TLS handshake timed out");
                    }
                },
                None => {
                    let info = ConnInfo {
                        tls_group: None,
                        peer,
                    };
                    serve_one(tcp, app, info, limits).await;
                }
            }
            metrics.connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve_one<S>(stream: S, app: axum::Router, info: ConnInfo, limits: ConnLimits)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let svc = TowerToHyperService::new(app.layer(axum::Extension(info)));
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read);
    if let Err(e) = b.serve_connection(TokioIo::new(stream), svc).await {
        tracing::debug!(error = %e, "connection ended");
    }
}
