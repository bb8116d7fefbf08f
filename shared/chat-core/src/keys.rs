//! Ed25519 keys as the contract stores and publishes them: PKCS#8 PEM for
//! private keys, SPKI PEM or a JWKS for public keys, and the RFC 7638
//! thumbprint that serves as `kid`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Why a key could not be read.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The text holds no PEM block of the expected kind.
    #[error("no {0} PEM block found")]
    NoKey(&'static str),
    /// A PEM block is not an Ed25519 key of the expected kind.
    #[error("PEM block {index} is not an Ed25519 {kind} key: {reason}")]
    BadKey {
        /// Position of the block in the file, from 1.
        index: usize,
        /// `PKCS#8 private` or `SPKI public`.
        kind: &'static str,
        /// What the parser said.
        reason: String,
    },
    /// A JWKS entry is not an Ed25519 public key.
    #[error("JWKS key {0:?} is not an OKP/Ed25519 key with a 32-byte x")]
    BadJwk(String),
}

/// The PEM blocks in `text` whose label is `label` (e.g. `PUBLIC KEY`).
fn pem_blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let Some(stop) = rest[start..].find(&end) else {
            break;
        };
        let stop = start + stop + end.len();
        blocks.push(&rest[start..stop]);
        rest = &rest[stop..];
    }
    blocks
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
    // RFC 7638: the required members in lexicographic order, no white space.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Reads every `PRIVATE KEY` (PKCS#8) block of a PEM file, in file order.
pub fn signing_keys_from_pem(text: &str) -> Result<Vec<SigningKey>, KeyError> {
    let blocks = pem_blocks(text, "PRIVATE KEY");
    if blocks.is_empty() {
        return Err(KeyError::NoKey("PRIVATE KEY (PKCS#8)"));
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, block)| {
            SigningKey::from_pkcs8_pem(block).map_err(|e| KeyError::BadKey {
                index: i + 1,
                kind: "PKCS#8 private",
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Reads every `PUBLIC KEY` (SPKI) block of a PEM file, in file order.
pub fn verifying_keys_from_pem(text: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    let blocks = pem_blocks(text, "PUBLIC KEY");
    if blocks.is_empty() {
        return Err(KeyError::NoKey("PUBLIC KEY (SPKI)"));
    }
    blocks
        .into_iter()
        .enumerate()
        .map(|(i, block)| {
            VerifyingKey::from_public_key_pem(block).map_err(|e| KeyError::BadKey {
                index: i + 1,
                kind: "SPKI public",
                reason: e.to_string(),
            })
        })
        .collect()
}

/// A fresh key pair as PEM text: (PKCS#8 private, SPKI public). For tools and tests.
pub fn generate_pem_pair() -> Result<(String, String), KeyError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let private = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::BadKey {
            index: 1,
            kind: "PKCS#8 private",
            reason: e.to_string(),
        })?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| KeyError::BadKey {
            index: 1,
            kind: "SPKI public",
            reason: e.to_string(),
        })?;
    Ok((private.to_string(), public))
}

/// One public key in a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type: `OKP`.
    pub kty: String,
    /// Curve: `Ed25519`.
    #[serde(default)]
    pub crv: String,
    /// The public key, base64url.
    #[serde(default)]
    pub x: String,
    /// The RFC 7638 thumbprint.
    #[serde(default)]
    pub kid: String,
    /// `EdDSA`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alg: String,
    /// `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "String::is_empty")]
    pub use_: String,
}

/// A JSON Web Key Set as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key, with its thumbprint as `kid`.
    pub fn from_key(key: &VerifyingKey) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
            kid: thumbprint(key),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }

    /// The Ed25519 key this JWK holds. The `kid` it claims is not trusted:
    /// callers index keys by the thumbprint they compute themselves.
    pub fn to_key(&self) -> Result<VerifyingKey, KeyError> {
        let bad = || KeyError::BadJwk(self.kid.chars().take(64).collect());
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Err(bad());
        }
        let bytes: [u8; 32] = URL_SAFE_NO_PAD
            .decode(&self.x)
            .map_err(|_| bad())?
            .try_into()
            .map_err(|_| bad())?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
    }
}

impl Jwks {
    /// The JWKS of these public keys.
    pub fn from_keys<'a>(keys: impl IntoIterator<Item = &'a VerifyingKey>) -> Self {
        Self {
            keys: keys.into_iter().map(Jwk::from_key).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_8037_example() {
        // RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key.
        let x = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .expect("base64");
        let key = VerifyingKey::from_bytes(&x.try_into().expect("32 bytes")).expect("key");
        assert_eq!(
            thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn pem_files_may_hold_several_keys() {
        let (priv1, pub1) = generate_pem_pair().expect("pair");
        let (priv2, pub2) = generate_pem_pair().expect("pair");
        let privs = signing_keys_from_pem(&format!("{priv1}\n{priv2}")).expect("private keys");
        let pubs = verifying_keys_from_pem(&format!("{pub1}{pub2}")).expect("public keys");
        assert_eq!(privs.len(), 2);
        assert_eq!(privs[1].verifying_key(), pubs[1]);
        assert!(matches!(
            verifying_keys_from_pem("nothing"),
            Err(KeyError::NoKey(_))
        ));
        assert!(matches!(
            signing_keys_from_pem(&pub1),
            Err(KeyError::NoKey(_))
        ));
    }

    #[test]
    fn jwk_round_trips_and_refuses_other_curves() {
        let (_, public) = generate_pem_pair().expect("pair");
        let key = verifying_keys_from_pem(&public).expect("key")[0];
        let jwk = Jwk::from_key(&key);
        assert_eq!(jwk.to_key().expect("round trip"), key);
        let rsa = Jwk {
            kty: "RSA".into(),
            ..jwk.clone()
        };
        assert!(rsa.to_key().is_err());
        let short = Jwk {
            x: "AAAA".into(),
            ..jwk
        };
        assert!(short.to_key().is_err());
    }
}
