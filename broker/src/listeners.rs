//! Listeners: each has a name, a security protocol, an address to bind and
//! an address clients are told to use, as Kafka's `listeners`,
//! `advertised.listeners` and `listener.security.protocol.map`. Every
//! shard binds every listener (SO_REUSEPORT); a connection remembers the
//! listener it came in on, and Metadata answers with that listener's
//! advertised address.

use std::net::SocketAddr;

use crate::config::ServeArgs;

/// How a listener's connections are secured (Kafka's security.protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// Clear text, no authentication.
    Plaintext,
    /// TLS; a client certificate, when asked for and given, names the
    /// principal.
    Ssl,
    /// SASL authentication over clear text.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(name: &str) -> Option<SecurityProtocol> {
        [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    /// Whether connections start with a TLS handshake.
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections must authenticate with SASL before anything
    /// but ApiVersions and the SASL requests is served.
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Its name (`PLAINTEXT`, `INTERNAL`, ...).
    pub name: String,
    /// Its security protocol.
    pub protocol: SecurityProtocol,
    /// Where it binds.
    pub bind: SocketAddr,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: i32,
}

/// The listeners `args` describe: `--listeners` (with the protocol map and
/// advertised addresses), or else one PLAINTEXT listener on `--listen`
/// advertised as `--advertised-listener`.
pub fn of(args: &ServeArgs) -> Result<Vec<Listener>, String> {
    let Some(spec) = &args.listeners else {
        let (advertised_host, advertised_port) = args.advertised();
        return Ok(vec![Listener {
            name: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            bind: args.listen,
            advertised_host,
            advertised_port,
        }]);
    };
    let map = protocol_map(args.listener_security_protocol_map.as_deref())?;
    let advertised = match &args.advertised_listeners {
        Some(text) => entries(text, "--advertised-listeners")?,
        None => Vec::new(),
    };
    let mut listeners: Vec<Listener> = Vec::new();
    for (name, host, port) in entries(spec, "--listeners")? {
        let protocol = match map.iter().find(|(n, _)| *n == name) {
            Some((_, p)) => *p,
            None => SecurityProtocol::parse(&name).ok_or_else(|| {
                format!(
                    "listener {name}: its name is no security protocol and \
                     --listener-security-protocol-map does not name one for it"
                )
            })?,
        };
        let ip = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind: SocketAddr = format!("{}:{port}", bracket(ip))
            .parse()
            .map_err(|_| format!("listener {name}: '{host}' is not an IP address to bind"))?;
        if listeners.iter().any(|l| l.name == name || l.bind == bind) {
            return Err(format!(
                "listener {name}: a listener of that name or address is given twice"
            ));
        }
        let (advertised_host, advertised_port) = match advertised.iter().find(|(n, ..)| *n == name)
        {
            Some((_, h, p)) => (h.clone(), i32::from(*p)),
            None if bind.ip().is_unspecified() => {
                return Err(format!(
                    "listener {name} binds every address ({bind}): \
                     --advertised-listeners must say which one clients use"
                ))
            }
            None => (bind.ip().to_string(), i32::from(port)),
        };
        listeners.push(Listener {
            name,
            protocol,
            bind,
            advertised_host,
            advertised_port,
        });
    }
    if listeners.is_empty() {
        return Err("--listeners names no listener".into());
    }
    if let Some((name, ..)) = advertised
        .iter()
        .find(|(n, ..)| !listeners.iter().any(|l| l.name == *n))
    {
        return Err(format!(
            "--advertised-listeners names {name}, which --listeners does not"
        ));
    }
    Ok(listeners)
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// `NAME://host:port,...` as (name, host, port), host without brackets.
fn entries(text: &str, flag: &str) -> Result<Vec<(String, String, u16)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let bad = || format!("{flag}: '{entry}' is not NAME://host:port");
            let (name, address) = entry.split_once("://").ok_or_else(bad)?;
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let port = port.parse::<u16>().map_err(|_| bad())?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(bad());
            }
            let host = host.trim_matches(['[', ']']).to_string();
            Ok((name.to_ascii_uppercase(), host, port))
        })
        .collect()
}

/// `NAME:PROTOCOL,...`.
fn protocol_map(text: Option<&str>) -> Result<Vec<(String, SecurityProtocol)>, String> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    text.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (name, protocol) = entry.split_once(':').ok_or_else(|| {
                format!("--listener-security-protocol-map: '{entry}' is not NAME:PROTOCOL")
            })?;
            let protocol = SecurityProtocol::parse(protocol).ok_or_else(|| {
                format!(
                    "--listener-security-protocol-map: '{protocol}' is not one of \
                     PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
                )
            })?;
            Ok((name.to_ascii_uppercase(), protocol))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn listeners(flags: &[&str]) -> Result<Vec<Listener>, String> {
        let args = Cli::parse_from(std::iter::once("sluice").chain(flags.iter().copied())).args;
        of(&args)
    }

    #[test]
    fn the_old_flags_are_one_plaintext_listener() {
        let l = listeners(&["--listen", "127.0.0.1:9999"]).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(
            (l[0].advertised_host.as_str(), l[0].advertised_port),
            ("127.0.0.1", 9999)
        );
        let l = listeners(&["--advertised-listener", "broker.example:19092"]).unwrap();
        assert_eq!(
            (l[0].advertised_host.as_str(), l[0].advertised_port),
            ("broker.example", 19092)
        );
    }

    #[test]
    fn named_listeners_take_their_protocols_from_the_map() {
        let l = listeners(&[
            "--listeners",
            "INTERNAL://127.0.0.1:9092,EXTERNAL://0.0.0.0:9094,SSL://[::1]:9095",
            "--listener-security-protocol-map",
            "INTERNAL:PLAINTEXT,EXTERNAL:SASL_SSL",
            "--advertised-listeners",
            "EXTERNAL://kafka.example.com:443",
        ])
        .unwrap();
        let names: Vec<_> = l.iter().map(|l| (l.name.as_str(), l.protocol)).collect();
        assert_eq!(
            names,
            [
                ("INTERNAL", SecurityProtocol::Plaintext),
                ("EXTERNAL", SecurityProtocol::SaslSsl),
                ("SSL", SecurityProtocol::Ssl)
            ]
        );
        assert_eq!(l[1].advertised_host, "kafka.example.com");
        assert_eq!(l[1].advertised_port, 443);
        assert_eq!(l[2].advertised_host, "::1");
    }

    #[test]
    fn bad_listener_specs_are_refused() {
        for bad in [
            &["--listeners", "MYSTERY://127.0.0.1:1"][..],
            &["--listeners", "PLAINTEXT://127.0.0.1"],
            &["--listeners", "PLAINTEXT://0.0.0.0:1"],
            &["--listeners", "PLAINTEXT://127.0.0.1:1,SSL://127.0.0.1:1"],
            &["--listeners", "PLAINTEXT://localhost:1"],
            &[
                "--listeners",
                "A://127.0.0.1:1",
                "--listener-security-protocol-map",
                "A:TLS",
            ],
            &[
                "--listeners",
                "PLAINTEXT://127.0.0.1:1",
                "--advertised-listeners",
                "OTHER://x:1",
            ],
        ] {
            assert!(listeners(bad).is_err(), "{bad:?}");
        }
    }
}
