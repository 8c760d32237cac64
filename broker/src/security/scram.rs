//! SCRAM (RFC 5802, RFC 7677) as Kafka implements it: SCRAM-SHA-256 and
//! SCRAM-SHA-512, credentials kept as salt, iteration count, StoredKey and
//! ServerKey (never the password or the salted password), and the
//! server's side of the four-message exchange. The cryptography is ring's.

use std::num::NonZeroU32;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::{digest, hmac, pbkdf2};
use serde::{Deserialize, Serialize};

/// A SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    /// SCRAM-SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    /// SCRAM-SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

/// Fewest iterations a credential may have (Kafka's minimum for both).
pub const MIN_ITERATIONS: i32 = 4096;
/// Most iterations AlterUserScramCredentials accepts (Kafka's maximum).
pub const MAX_ITERATIONS: i32 = 16384;

impl Mechanism {
    /// Both, strongest first.
    pub const ALL: [Mechanism; 2] = [Mechanism::Sha512, Mechanism::Sha256];

    /// Its SASL name.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism of a SASL name.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its number in the credential APIs (KIP-554: 1 and 2).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    /// The mechanism of a number in the credential APIs.
    pub fn from_kafka_type(t: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.kafka_type() == t)
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// Hi(password, salt, iterations) of RFC 5802: PBKDF2 with the HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        let iterations = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(self.pbkdf2(), iterations, salt, password, &mut out);
        out
    }
}

/// One user's credential for one mechanism, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The salt (the client's, when AlterUserScramCredentials set it).
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    /// H(HMAC(SaltedPassword, "Client Key")).
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: u32,
}

impl Credential {
    /// The credential for a salted password (what AlterUserScramCredentials
    /// carries: the client salts and hashes, the password never travels).
    pub fn from_salted(
        mechanism: Mechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> Credential {
        let client_key = mechanism.mac(salted_password, b"Client Key");
        Credential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.mac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for a password, with a fresh random salt.
    pub fn from_password(mechanism: Mechanism, password: &str, iterations: u32) -> Credential {
        let salt = random_bytes(32);
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        Credential::from_salted(mechanism, salt, &salted, iterations)
    }

    /// Whether `password` is the one this credential was made from (SASL
    /// PLAIN checks passwords against the SCRAM credentials).
    pub fn matches_password(&self, mechanism: Mechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.mac(&salted, b"Client Key");
        constant_time_eq(&mechanism.hash(&client_key), &self.stored_key)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` bytes from the system's random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut out = vec![0u8; n];
    // SystemRandom reads getrandom(2); it fails only where there is none.
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("the system's random source");
    out
}

/// Why an exchange failed; the text is for the log, the client hears only
/// that authentication failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

fn fail<T>(why: impl Into<String>) -> Result<T, ScramError> {
    Err(ScramError(why.into()))
}

/// The server's half of one exchange, between the server-first and the
/// client-final message.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    /// The user, as named in the client-first message.
    pub user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credential: Credential,
}

/// A username of a SCRAM message: `=2C` is ',' and `=3D` is '='.
fn unescape_name(raw: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return fail("bad escape in the user name"),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Takes the client-first message and answers the server-first one;
/// `lookup` finds the user's credential for this mechanism.
pub fn server_first(
    mechanism: Mechanism,
    client_first: &[u8],
    lookup: impl FnOnce(&str) -> Option<Credential>,
) -> Result<(Exchange, Vec<u8>), ScramError> {
    let Ok(text) = std::str::from_utf8(client_first) else {
        return fail("the client-first message is not UTF-8");
    };
    // gs2-header: "n,," or "y,," (no channel binding), optionally with an
    // authzid "n,a=user,"; "p=..." (binding required) is refused.
    let mut parts = text.splitn(3, ',');
    let (Some(binding), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
    else {
        return fail("the client-first message has no GS2 header");
    };
    if binding != "n" && binding != "y" {
        return fail("channel binding is not supported");
    }
    let mut fields = bare.split(',');
    let user = match fields.next().and_then(|f| f.strip_prefix("n=")) {
        Some(raw) => unescape_name(raw)?,
        None => return fail("the client-first message names no user"),
    };
    let client_nonce = match fields.next().and_then(|f| f.strip_prefix("r=")) {
        Some(n) if !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') => n,
        _ => return fail("the client-first message has no valid nonce"),
    };
    // Extensions (Kafka's tokenauth=true) are accepted and ignored, but
    // delegation tokens do not exist here.
    if fields.any(|f| f == "tokenauth=true") {
        return fail("delegation tokens are not supported");
    }
    if let Some(zid) = authzid.strip_prefix("a=") {
        if unescape_name(zid)? != user {
            return fail("the authorization id is not the user");
        }
    } else if !authzid.is_empty() {
        return fail("bad authorization id in the GS2 header");
    }
    let Some(credential) = lookup(&user) else {
        return fail(format!(
            "no {} credential for user '{user}'",
            mechanism.name()
        ));
    };
    let nonce = format!("{client_nonce}{}", B64.encode(random_bytes(24)));
    let server_first = format!(
        "r={nonce},s={},i={}",
        B64.encode(&credential.salt),
        credential.iterations
    );
    let reply = server_first.clone().into_bytes();
    let gs2_header = format!("{binding},{authzid},");
    Ok((
        Exchange {
            mechanism,
            user,
            gs2_header,
            client_first_bare: bare.to_string(),
            server_first,
            nonce,
            credential,
        },
        reply,
    ))
}

impl Exchange {
    /// Its mechanism.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Checks the client-final message's proof and answers the
    /// server-final message (the server's signature).
    pub fn client_final(self, message: &[u8]) -> Result<Vec<u8>, ScramError> {
        let Ok(text) = std::str::from_utf8(message) else {
            return fail("the client-final message is not UTF-8");
        };
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return fail("the client-final message has no proof");
        };
        let mut fields = without_proof.split(',');
        let binding = fields.next().and_then(|f| f.strip_prefix("c="));
        if binding.and_then(|b| B64.decode(b).ok()) != Some(self.gs2_header.clone().into_bytes()) {
            return fail("the channel binding does not match the GS2 header");
        }
        if fields.next().and_then(|f| f.strip_prefix("r=")) != Some(self.nonce.as_str()) {
            return fail("the nonce does not match");
        }
        let Ok(proof) = B64.decode(proof) else {
            return fail("the proof is not base64");
        };
        let m = self.mechanism;
        if proof.len() != m.output_len() {
            return fail("the proof has the wrong length");
        }
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = m.mac(&self.credential.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
        if !constant_time_eq(&m.hash(&client_key), &self.credential.stored_key) {
            return fail(format!("invalid proof for user '{}'", self.user));
        }
        let server_signature = m.mac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// serde as base64 text, for the credential store.
mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side, as RFC 5802 describes it.
    fn client_proof(
        m: Mechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        without_proof: &str,
    ) -> (String, Vec<u8>) {
        let fields: Vec<&str> = server_first.split(',').collect();
        let salt = B64.decode(&fields[1][2..]).unwrap();
        let iterations: u32 = fields[2][2..].parse().unwrap();
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.mac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = m.mac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.mac(&salted, b"Server Key");
        (B64.encode(proof), m.mac(&server_key, auth.as_bytes()))
    }

    fn exchange(m: Mechanism, stored_for: &str, password: &str) -> Result<Vec<u8>, ScramError> {
        let credential = Credential::from_password(m, stored_for, 4096);
        let first_bare = "n=us=3Der,r=fyko+d2lbbFgONRv9qkxdawL";
        let (exchange, server_first) =
            server_first(m, format!("n,,{first_bare}").as_bytes(), |u| {
                (u == "us=er").then(|| credential.clone())
            })?;
        let server_first = String::from_utf8(server_first).unwrap();
        let nonce = &server_first.split(',').next().unwrap()[2..];
        assert!(nonce.starts_with("fyko+d2lbbFgONRv9qkxdawL"));
        let without_proof = format!("c=biws,r={nonce}");
        let (proof, expected) =
            client_proof(m, password, first_bare, &server_first, &without_proof);
        let reply = exchange.client_final(format!("{without_proof},p={proof}").as_bytes())?;
        assert_eq!(reply, format!("v={}", B64.encode(expected)).into_bytes());
        Ok(reply)
    }

    #[test]
    fn a_client_with_the_password_is_accepted_and_verifies_the_server() {
        for m in Mechanism::ALL {
            exchange(m, "pencil", "pencil").unwrap();
        }
    }

    #[test]
    fn a_wrong_password_is_refused() {
        for m in Mechanism::ALL {
            assert!(exchange(m, "pencil", "pen").is_err());
        }
    }

    /// RFC 7677's test vector: SCRAM-SHA-256 for user "user", password
    /// "pencil", salt and nonces as given there.
    #[test]
    fn rfc7677_vector() {
        let m = Mechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let credential = Credential::from_salted(m, salt, &salted, 4096);
        let first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let without_proof = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let exchange = Exchange {
            mechanism: m,
            user: "user".into(),
            gs2_header: "n,,".into(),
            client_first_bare: first_bare.into(),
            server_first: server_first.into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            credential,
        };
        let reply = exchange
            .client_final(
                format!("{without_proof},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
                    .as_bytes(),
            )
            .unwrap();
        assert_eq!(reply, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn malformed_messages_are_refused() {
        let credential = Credential::from_password(Mechanism::Sha256, "x", 4096);
        let lookup = |_: &str| Some(credential.clone());
        for bad in [
            &b""[..],
            b"n,,",
            b"p=tls-unique,,n=u,r=abc",
            b"n,,n=u",
            b"n,,n=u,r=",
            b"n,a=other,n=u,r=abc",
            b"n,,n=u=ZZ,r=abc",
            b"n,,n=u,r=abc,tokenauth=true",
            b"\xff\xfe",
        ] {
            assert!(
                server_first(Mechanism::Sha256, bad, lookup).is_err(),
                "{bad:?}"
            );
        }
        assert!(server_first(Mechanism::Sha256, b"n,,n=u,r=abc", |_| None).is_err());
        let (exchange, _) = server_first(Mechanism::Sha256, b"n,,n=u,r=abc", lookup).unwrap();
        assert!(exchange.client_final(b"c=biws,r=abc,p=AAAA").is_err());
    }

    #[test]
    fn plain_passwords_are_checked_against_the_credential() {
        for m in Mechanism::ALL {
            let c = Credential::from_password(m, "secret", 4096);
            assert!(c.matches_password(m, "secret"));
            assert!(!c.matches_password(m, "Secret"));
        }
    }
}
