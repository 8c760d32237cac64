//! TLS for SSL and SASL_SSL listeners, with rustls: the certificate chain
//! and key from PEM files, client certificates checked against a CA file
//! when asked for. The configuration is built once (and again on SIGHUP)
//! and handed to every shard; each shard runs the TLS sessions of its own
//! connections.

use std::path::Path;
use std::sync::Arc;

use futures_rustls::TlsAcceptor;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ServeArgs;

/// Client certificates: Kafka's ssl.client.auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Not asked for.
    None,
    /// Asked for; checked when given, a connection without one goes on.
    Requested,
    /// Needed: a connection without a valid one fails its handshake.
    Required,
}

impl ClientAuth {
    fn parse(text: &str) -> Result<ClientAuth, String> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err(format!(
                "--ssl-client-auth must be none, requested or required, not '{text}'"
            )),
        }
    }
}

/// The TLS acceptor `args` describe, or `None` when no certificate is
/// configured (then no listener may use TLS).
pub fn acceptor(args: &ServeArgs) -> Result<Option<TlsAcceptor>, String> {
    let client_auth = ClientAuth::parse(&args.ssl_client_auth)?;
    let (cert, key) = match (&args.ssl_certificate, &args.ssl_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return Err("--ssl-certificate and --ssl-key go together".into()),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (client_auth, &args.ssl_client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err("--ssl-client-auth requested or required needs --ssl-client-ca".into())
        }
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(ca)? {
                roots.add(c).map_err(|e| {
                    format!("{}: a CA certificate rustls refuses: {e}", ca.display())
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("{}: {e}", ca.display()))?,
            )
        }
    };
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: no private key in PEM: {e}", key.display()))?;
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{}: the certificate and key do not go together: {e}",
            cert.display()
        )
    })?;
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in PEM", path.display()));
    }
    Ok(certs)
}

/// The principal of a client certificate, Kafka's default: `User:` and the
/// subject's distinguished name as RFC 2253 writes it (most specific
/// first: `CN=client,OU=...,O=...`).
pub fn principal_of(certificate: &[u8]) -> Option<String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(certificate).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    let rdns: Vec<_> = cert.subject().iter().collect();
    for rdn in rdns.into_iter().rev() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|a| {
                let key = x509_parser::objects::oid2abbrev(a.attr_type(), registry)
                    .map(str::to_string)
                    .unwrap_or_else(|_| a.attr_type().to_id_string());
                let value = a.as_str().map(escape_dn).unwrap_or_default();
                format!("{key}={value}")
            })
            .collect();
        parts.push(attributes.join("+"));
    }
    Some(format!("User:{}", parts.join(",")))
}

/// RFC 2253's escapes of an attribute value.
fn escape_dn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn("a,b"), "a\\,b");
        assert_eq!(escape_dn(" x "), "\\ x\\ ");
        assert_eq!(escape_dn("plain"), "plain");
    }
}
