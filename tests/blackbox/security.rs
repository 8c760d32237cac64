//! Security against the real broker: listeners of every protocol on one
//! broker, TLS with and without client certificates (rustls in the broker,
//! OpenSSL in librdkafka), SASL PLAIN and SCRAM-SHA-256/512, refusals
//! (wrong password, unknown user, unknown mechanism, requests before
//! authentication), hostile bytes before and during the exchange, the
//! credential APIs and their durability, re-authentication (KIP-368) and
//! certificate reload on SIGHUP. Certificates are made here with rcgen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use sluice_protocol::kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use sluice_protocol::kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use sluice_protocol::kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiVersionsRequest, DescribeUserScramCredentialsRequest,
    MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::harness::{block_on, create_topic, Broker, DataDir};
use crate::raw::RawClient;

/// A CA and the PEM files signed by it, in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub broker_cert: PathBuf,
    pub broker_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Makes a CA named `name`, a broker certificate for localhost and
/// 127.0.0.1, and a client certificate for `O=Acme, OU=eng, CN=client1`.
pub fn pki(dir: &Path, name: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |sans: Vec<String>, dn: &[(DnType, &str)], purpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        params.extended_key_usages = vec![purpose];
        (
            params.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (broker_cert, broker_key) = leaf(
        vec!["localhost".into(), "127.0.0.1".into()],
        &[(DnType::CommonName, "localhost")],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (client_cert, client_key) = leaf(
        vec![],
        &[
            (DnType::OrganizationName, "Acme"),
            (DnType::OrganizationalUnitName, "eng"),
            (DnType::CommonName, "client1"),
        ],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let write = |file: &str, text: &str| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca_pem),
        broker_cert: write("broker.pem", &broker_cert),
        broker_key: write("broker.key", &broker_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

/// `sluice scram-credential`: the first user, before the broker starts.
pub fn bootstrap_user(data_dir: &Path, user: &str, password: &str) {
    let file = data_dir.with_extension(format!("{user}.password"));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["scram-credential", "--user", user, "--password-file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scram-credential: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_file(file);
}

/// Broker flags for TLS with `pki`'s files, client certificates requested.
fn tls_flags(pki: &Pki) -> Vec<String> {
    let p = |p: &PathBuf| p.display().to_string();
    vec![
        "--ssl-certificate".into(),
        p(&pki.broker_cert),
        "--ssl-key".into(),
        p(&pki.broker_key),
        "--ssl-client-ca".into(),
        p(&pki.ca),
        "--ssl-client-auth".into(),
        "requested".into(),
    ]
}

fn config(addr: &str, settings: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("message.timeout.ms", "10000")
        .set("socket.timeout.ms", "10000");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    c
}

/// Produces `value` to partition 0 of `topic` and reads it back at the
/// offset the broker gave, both through `addr` with `settings`.
fn round_trip(
    addr: &str,
    settings: &[(&str, &str)],
    topic: &str,
    value: &str,
) -> Result<(), String> {
    let producer: FutureProducer = config(addr, settings).create().map_err(|e| e.to_string())?;
    let delivered = block_on(
        producer.send(
            FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value),
            Duration::from_secs(10),
        ),
    );
    let offset = match delivered {
        Ok(delivery) => delivery.offset,
        Err((e, _)) => return Err(format!("produce: {e}")),
    };
    let consumer: BaseConsumer = config(addr, settings)
        .set("group.id", "security")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, rdkafka::Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.payload() == Some(value.as_bytes()) => return Ok(()),
            Some(Ok(m)) => return Err(format!("read back {:?}", m.payload())),
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    Err("nothing read back".into())
}

/// Client settings, librdkafka's names.
type Settings<'a> = Vec<(&'a str, &'a str)>;

const LISTENERS: [&str; 4] = ["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"];

fn secured_broker(dir: &DataDir, pki: &Pki, extra: &[&str]) -> Broker {
    bootstrap_user(dir.path(), "alice", "alice-secret");
    let mut flags = tls_flags(pki);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Broker::start_listeners(dir.path(), 2, &LISTENERS, &flags)
}

#[test]
fn every_protocol_and_mechanism_on_one_broker_with_librdkafka() {
    let dir = DataDir::new("security-listeners");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let broker = secured_broker(&dir, &pki, &[]);
    create_topic(&broker, "secure", 1, &[]);
    let ca = pki.ca.display().to_string();
    let (cert, key) = (
        pki.client_cert.display().to_string(),
        pki.client_key.display().to_string(),
    );
    let sasl = |m: &'static str, protocol: &'static str| {
        vec![
            ("security.protocol", protocol),
            ("sasl.mechanism", m),
            ("sasl.username", "alice"),
            ("sasl.password", "alice-secret"),
        ]
    };
    let mut cases: Vec<(&str, &str, Settings)> = vec![("plaintext", "PLAINTEXT", vec![])];
    for m in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        cases.push((m, "SASL_PLAINTEXT", sasl(m, "SASL_PLAINTEXT")));
        let mut over_tls = sasl(m, "SASL_SSL");
        over_tls.push(("ssl.ca.location", &ca));
        cases.push((m, "SASL_SSL", over_tls));
    }
    cases.push((
        "no client certificate",
        "SSL",
        vec![("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
    ));
    cases.push((
        "client certificate",
        "SSL",
        vec![
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &ca),
            ("ssl.certificate.location", &cert),
            ("ssl.key.location", &key),
        ],
    ));
    for (what, listener, settings) in &cases {
        // Each client bootstraps on its listener and then connects where
        // Metadata sends it: that listener's own address, or it fails.
        let value = format!("{listener} {what}");
        round_trip(broker.listener(listener), settings, "secure", &value)
            .unwrap_or_else(|e| panic!("{value}: {e}\n{}", broker.log()));
    }
    // A TLS client that does not trust the broker's CA gets nowhere, and
    // nor does a clear-text client on a TLS listener.
    let other = self::pki(&dir.path().with_extension("pki-other"), "Other CA");
    let untrusting = vec![
        ("security.protocol", "SSL"),
        ("ssl.ca.location", other.ca.to_str().unwrap()),
        ("message.timeout.ms", "3000"),
    ];
    assert!(round_trip(broker.listener("SSL"), &untrusting, "secure", "x").is_err());
    assert!(round_trip(
        broker.listener("SSL"),
        &[("message.timeout.ms", "3000")],
        "secure",
        "x"
    )
    .is_err());
}

/// A raw connection on the SASL_PLAINTEXT listener that has shaken hands
/// for `mechanism`.
fn handshake(broker: &Broker, mechanism: &str) -> (RawClient, i16) {
    let mut c = RawClient::connect(broker.listener("SASL_PLAINTEXT"));
    let r = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(mechanism.into())),
    );
    (c, r.error_code)
}

fn authenticate(c: &mut RawClient, token: &[u8]) -> (i16, Bytes, i64) {
    let r = c.call(
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token)),
    );
    (r.error_code, r.auth_bytes, r.session_lifetime_ms)
}

fn closed(c: &mut RawClient) -> bool {
    matches!(c.try_read_frame(), Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof
        || e.kind() == std::io::ErrorKind::ConnectionReset)
}

/// A SCRAM client's side, for raw exchanges (RFC 5802).
struct Scram {
    mechanism: &'static str,
    first_bare: String,
}

impl Scram {
    fn new(mechanism: &'static str, user: &str) -> Scram {
        Scram {
            mechanism,
            first_bare: format!("n={user},r=raw-client-nonce"),
        }
    }

    fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare).into_bytes()
    }

    fn last(&self, server_first: &[u8], password: &str) -> Vec<u8> {
        use base64::Engine as _;
        use ring::{digest, hmac, pbkdf2};
        let b64 = base64::engine::general_purpose::STANDARD;
        let sf = std::str::from_utf8(server_first).unwrap();
        let f: Vec<&str> = sf.split(',').collect();
        let nonce = &f[0][2..];
        let salt = b64.decode(&f[1][2..]).unwrap();
        let iterations: u32 = f[2][2..].parse().unwrap();
        let (h, p, d) = match self.mechanism {
            "SCRAM-SHA-256" => (
                hmac::HMAC_SHA256,
                pbkdf2::PBKDF2_HMAC_SHA256,
                &digest::SHA256,
            ),
            _ => (
                hmac::HMAC_SHA512,
                pbkdf2::PBKDF2_HMAC_SHA512,
                &digest::SHA512,
            ),
        };
        let mut salted = vec![0u8; d.output_len()];
        pbkdf2::derive(
            p,
            iterations.try_into().unwrap(),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let mac = |k: &[u8], m: &[u8]| hmac::sign(&hmac::Key::new(h, k), m).as_ref().to_vec();
        let client_key = mac(&salted, b"Client Key");
        let stored = digest::digest(d, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{sf},{without_proof}", self.first_bare);
        let signature = mac(stored.as_ref(), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        format!("{without_proof},p={}", b64.encode(proof)).into_bytes()
    }
}

fn scram_login(broker: &Broker, mechanism: &'static str, user: &str, password: &str) -> i16 {
    let (mut c, code) = handshake(broker, mechanism);
    assert_eq!(code, 0);
    let scram = Scram::new(mechanism, user);
    let (code, server_first, _) = authenticate(&mut c, &scram.first());
    if code != 0 {
        return code;
    }
    authenticate(&mut c, &scram.last(&server_first, password)).0
}

#[test]
fn wrong_passwords_unknown_users_and_early_requests_are_refused() {
    let dir = DataDir::new("security-refusals");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let broker = secured_broker(
        &dir,
        &pki,
        &["--connection-failed-authentication-delay-ms", "300"],
    );

    // ApiVersions is served before authentication and lists the SASL APIs.
    let mut c = RawClient::connect(broker.listener("SASL_PLAINTEXT"));
    let versions = c.call(3, &ApiVersionsRequest::default());
    for key in [17, 36, 50, 51] {
        assert!(versions.api_keys.iter().any(|k| k.api_key == key), "{key}");
    }
    // Anything else closes the connection unanswered.
    c.send(12, &MetadataRequest::default());
    assert!(closed(&mut c), "Metadata before authentication was served");

    // PLAIN: the right password works, and Metadata then answers with
    // this listener's address.
    let (mut c, code) = handshake(&broker, "PLAIN");
    assert_eq!(code, 0);
    assert_eq!(authenticate(&mut c, b"\0alice\0alice-secret").0, 0);
    let metadata = c.call(12, &MetadataRequest::default());
    let port = broker
        .listener("SASL_PLAINTEXT")
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(metadata.brokers[0].port.to_string(), port);

    // A wrong password: SASL_AUTHENTICATION_FAILED, late, then closed.
    let (mut c, _) = handshake(&broker, "PLAIN");
    let started = Instant::now();
    assert_eq!(authenticate(&mut c, b"\0alice\0guess").0, 58);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(closed(&mut c));

    // SCRAM: right, wrong and unknown, both mechanisms.
    for m in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        assert_eq!(scram_login(&broker, m, "alice", "alice-secret"), 0, "{m}");
        assert_eq!(scram_login(&broker, m, "alice", "alice-secret!"), 58, "{m}");
        assert_eq!(
            scram_login(&broker, m, "mallory", "alice-secret"),
            58,
            "{m}"
        );
    }

    // A mechanism not offered: UNSUPPORTED_SASL_MECHANISM with the list.
    let (mut c, code) = handshake(&broker, "GSSAPI");
    assert_eq!(code, 33);
    assert!(closed(&mut c));
    // SaslAuthenticate before a handshake: ILLEGAL_SASL_STATE, closed.
    let mut c = RawClient::connect(broker.listener("SASL_PLAINTEXT"));
    assert_eq!(authenticate(&mut c, b"\0alice\0alice-secret").0, 34);
    assert!(closed(&mut c));
    // A SASL handshake on a listener without SASL: ILLEGAL_SASL_STATE.
    let mut c = RawClient::connect(broker.listener("PLAINTEXT"));
    let r = c.call(
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    );
    assert_eq!(r.error_code, 34);

    let log = broker.log();
    assert!(
        log.matches("authentication failed").count() >= 5,
        "failed authentications are logged with the client's address:\n{log}"
    );
    assert!(log.contains("user=\"mallory\"") || log.contains("mallory"));
}

#[test]
fn hostile_bytes_before_and_during_sasl_close_only_that_connection() {
    let dir = DataDir::new("security-hostile");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let mut broker = secured_broker(
        &dir,
        &pki,
        &["--connection-failed-authentication-delay-ms", "10"],
    );
    // An authenticated connection that must outlive all of it.
    let (mut good, _) = handshake(&broker, "PLAIN");
    assert_eq!(authenticate(&mut good, b"\0alice\0alice-secret").0, 0);

    type Attack = Box<dyn Fn(&mut RawClient)>;
    let attacks: Vec<(&str, Attack)> = vec![
        ("garbage", Box::new(|c| c.write_raw(&[0xde; 64]))),
        (
            "a negative size",
            Box::new(|c| c.write_raw(&(-5i32).to_be_bytes())),
        ),
        (
            "a 600 KiB frame before authentication",
            Box::new(|c| {
                c.write_raw(&(600 * 1024i32).to_be_bytes());
                let _ = c.try_write_raw(&vec![0u8; 600 * 1024]);
            }),
        ),
        (
            "a truncated SaslHandshake body",
            Box::new(|c| {
                let frame = RawClient::frame(1, 1, &SaslHandshakeRequest::default());
                let mut cut = frame[..frame.len() - 1].to_vec();
                let size = (cut.len() - 4) as i32;
                cut[..4].copy_from_slice(&size.to_be_bytes());
                c.write_raw(&cut);
            }),
        ),
        (
            "bytes that are no SCRAM message",
            Box::new(|c| {
                let r = c.call(
                    1,
                    &SaslHandshakeRequest::default()
                        .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-256")),
                );
                assert_eq!(r.error_code, 0);
                assert_eq!(authenticate(c, &[0xff, 0xfe, 0, 1, 2]).0, 58);
            }),
        ),
        (
            "a forged SCRAM proof",
            Box::new(|c| {
                c.call(
                    1,
                    &SaslHandshakeRequest::default()
                        .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
                );
                let (code, _, _) = authenticate(c, b"n,,n=alice,r=abc");
                assert_eq!(code, 0);
                assert_eq!(authenticate(c, b"c=biws,r=abc,p=AAAA").0, 58);
            }),
        ),
        (
            "a second handshake mid-exchange",
            Box::new(|c| {
                let hs = SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str("PLAIN"));
                assert_eq!(c.call(1, &hs).error_code, 0);
                assert_eq!(c.call(1, &hs).error_code, 34);
            }),
        ),
    ];
    for (what, attack) in &attacks {
        let mut c = RawClient::connect(broker.listener("SASL_PLAINTEXT"));
        attack(&mut c);
        assert!(closed(&mut c), "{what}: the connection stayed open");
        assert!(broker.is_running(), "{what}: the broker died");
    }
    let metadata = good.call(12, &MetadataRequest::default());
    assert_eq!(metadata.brokers.len(), 1, "the good connection still works");
}

/// A user's describe result: name, error code, (mechanism, iterations).
type Described = (String, i16, Vec<(i8, i32)>);

fn describe(c: &mut RawClient, users: Option<&[&str]>) -> Vec<Described> {
    let request = DescribeUserScramCredentialsRequest::default().with_users(users.map(|u| {
        u.iter()
            .map(|n| UserName::default().with_name(StrBytes::from_string(n.to_string())))
            .collect()
    }));
    c.call(0, &request)
        .results
        .into_iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect(),
            )
        })
        .collect()
}

/// Kafka's client side of an upsert: the client salts and hashes.
fn upsert(user: &str, mechanism: i8, iterations: i32, password: &str) -> ScramCredentialUpsertion {
    use ring::pbkdf2;
    let salt = b"a-salt-of-the-client".to_vec();
    let (alg, len) = match mechanism {
        1 => (pbkdf2::PBKDF2_HMAC_SHA256, 32),
        _ => (pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut salted = vec![0u8; len];
    pbkdf2::derive(
        alg,
        (iterations.max(1) as u32).try_into().unwrap(),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(salt.into())
        .with_salted_password(salted.into())
}

fn alter(
    c: &mut RawClient,
    deletions: Vec<(&str, i8)>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Vec<(String, i16)> {
    let request = AlterUserScramCredentialsRequest::default()
        .with_deletions(
            deletions
                .into_iter()
                .map(|(u, m)| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(u.into()))
                        .with_mechanism(m)
                })
                .collect(),
        )
        .with_upsertions(upsertions);
    c.call(0, &request)
        .results
        .into_iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect()
}

#[test]
fn credentials_are_managed_over_the_protocol_and_survive_kill9() {
    let dir = DataDir::new("security-credentials");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let mut broker = secured_broker(&dir, &pki, &[]);
    let mut c = RawClient::connect(broker.listener("PLAINTEXT"));
    assert_eq!(
        describe(&mut c, None),
        [("alice".to_string(), 0, vec![(1, 8192), (2, 8192)])]
    );
    assert_eq!(
        describe(&mut c, Some(&["bob"]))[0].1,
        91,
        "RESOURCE_NOT_FOUND"
    );
    assert!(describe(&mut c, Some(&["alice", "alice"]))
        .iter()
        .all(|r| r.1 == 92));

    let results = alter(
        &mut c,
        vec![("alice", 1), ("carol", 1)],
        vec![
            upsert("bob", 2, 4096, "bob-secret"),
            upsert("dave", 1, 100, "x"),
            upsert("erin", 9, 4096, "x"),
            upsert("frank", 1, 4096, "x"),
            upsert("frank", 1, 8192, "y"),
        ],
    );
    assert_eq!(
        results,
        [
            ("alice".to_string(), 0),
            ("carol".to_string(), 91),
            ("bob".to_string(), 0),
            ("dave".to_string(), 93),
            ("erin".to_string(), 33),
            ("frank".to_string(), 92),
        ]
    );
    // Durable before the answer: kill -9 at once.
    broker.kill9();
    broker.restart();
    let mut c = RawClient::connect(broker.listener("PLAINTEXT"));
    assert_eq!(
        describe(&mut c, None),
        [
            ("alice".to_string(), 0, vec![(2, 8192)]),
            ("bob".to_string(), 0, vec![(2, 4096)])
        ]
    );
    assert_eq!(
        scram_login(&broker, "SCRAM-SHA-256", "alice", "alice-secret"),
        58
    );
    assert_eq!(
        scram_login(&broker, "SCRAM-SHA-512", "alice", "alice-secret"),
        0
    );
    assert_eq!(
        scram_login(&broker, "SCRAM-SHA-512", "bob", "bob-secret"),
        0
    );
    // PLAIN checks against the same credentials.
    let (mut p, _) = handshake(&broker, "PLAIN");
    assert_eq!(authenticate(&mut p, b"\0bob\0bob-secret").0, 0);
    // The store holds no password.
    let store = std::fs::read_to_string(dir.path().join("security.json")).unwrap();
    assert!(!store.contains("secret"), "{store}");
}

#[test]
fn sessions_expire_unless_clients_reauthenticate() {
    let dir = DataDir::new("security-reauth");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let broker = secured_broker(&dir, &pki, &["--connections-max-reauth-ms", "1500"]);
    create_topic(&broker, "reauth", 1, &[]);

    // A raw client that does not re-authenticate is cut off after the
    // session lifetime the broker told it.
    let (mut c, _) = handshake(&broker, "PLAIN");
    let (code, _, lifetime) = authenticate(&mut c, b"\0alice\0alice-secret");
    assert_eq!((code, lifetime), (0, 1500));
    c.call(12, &MetadataRequest::default());
    // Re-authentication on the same connection keeps it going.
    let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    assert_eq!(c.call(1, &hs).error_code, 0);
    assert_eq!(authenticate(&mut c, b"\0alice\0alice-secret").0, 0);
    std::thread::sleep(Duration::from_millis(1700));
    c.send(12, &MetadataRequest::default());
    assert!(closed(&mut c), "an expired session was served");

    // librdkafka re-authenticates (KIP-368) and keeps producing over one
    // session after another.
    let settings = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ];
    let producer: FutureProducer = config(broker.listener("SASL_PLAINTEXT"), &settings)
        .create()
        .unwrap();
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let value = format!("m{sent}");
        block_on(
            producer.send(
                FutureRecord::<(), str>::to("reauth")
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(10),
            ),
        )
        .unwrap_or_else(|(e, _)| panic!("message {sent}: {e}\n{}", broker.log()));
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent > 20);
    let log = broker.log();
    assert_eq!(
        log.matches("expired without re-authentication").count(),
        1,
        "only the raw client's session ran out:\n{log}"
    );
}

#[test]
fn a_new_certificate_is_taken_on_sighup() {
    let dir = DataDir::new("security-reload");
    let first = pki(&dir.path().with_extension("pki-1"), "First CA");
    let second = pki(&dir.path().with_extension("pki-2"), "Second CA");
    // The broker reads its files from fixed paths, as an operator's would.
    let live = dir.path().with_extension("pki-live");
    std::fs::create_dir_all(&live).unwrap();
    let install = |p: &Pki| {
        std::fs::copy(&p.broker_cert, live.join("broker.pem")).unwrap();
        std::fs::copy(&p.broker_key, live.join("broker.key")).unwrap();
    };
    install(&first);
    let (cert, key) = (live.join("broker.pem"), live.join("broker.key"));
    let mut broker = Broker::start_listeners(
        dir.path(),
        1,
        &["PLAINTEXT", "SSL"],
        &[
            "--ssl-certificate",
            cert.to_str().unwrap(),
            "--ssl-key",
            key.to_str().unwrap(),
        ],
    );
    create_topic(&broker, "reload", 1, &[]);
    let trusting = |p: &Pki| {
        vec![
            ("security.protocol", "SSL"),
            (
                "ssl.ca.location",
                p.ca.to_str().unwrap().to_string().leak() as &str,
            ),
            ("message.timeout.ms", "4000"),
        ]
    };
    round_trip(broker.listener("SSL"), &trusting(&first), "reload", "one").unwrap();
    assert!(round_trip(broker.listener("SSL"), &trusting(&second), "reload", "x").is_err());
    install(&second);
    broker.signal_keep(libc::SIGHUP);
    assert!(crate::harness::wait_until(Duration::from_secs(5), || {
        broker.log().contains("TLS certificate and key reloaded")
    }));
    round_trip(broker.listener("SSL"), &trusting(&second), "reload", "two")
        .unwrap_or_else(|e| panic!("after SIGHUP: {e}\n{}", broker.log()));
    // A broken file is refused and the working certificate stays.
    std::fs::write(live.join("broker.key"), "not a key").unwrap();
    broker.signal_keep(libc::SIGHUP);
    assert!(crate::harness::wait_until(Duration::from_secs(5), || {
        broker.log().contains("TLS reload failed")
    }));
    round_trip(
        broker.listener("SSL"),
        &trusting(&second),
        "reload",
        "three",
    )
    .unwrap();
}

/// An independent client: `tests/clients/security_clients.py` manages
/// SCRAM credentials with confluent-kafka's admin API, then kafka-python
/// (its own SASL, SCRAM and TLS code) uses them on every secured listener.
#[test]
fn an_independent_client_manages_and_uses_credentials() {
    let dir = DataDir::new("security-python");
    let pki = pki(&dir.path().with_extension("pki"), "Sluice test CA");
    let broker = secured_broker(&dir, &pki, &[]);
    create_topic(&broker, "py-security", 1, &[]);
    let (ca, cert, key) = (&pki.ca, &pki.client_cert, &pki.client_key);
    let args = [
        broker.listener("SASL_PLAINTEXT").as_ref(),
        broker.listener("SASL_SSL").as_ref(),
        broker.listener("SSL").as_ref(),
        ca.as_os_str(),
        cert.as_os_str(),
        key.as_os_str(),
    ];
    crate::admin_clients::run_client_script(
        &broker,
        "security_clients.py",
        &args,
        "security clients: ok",
    );
}
