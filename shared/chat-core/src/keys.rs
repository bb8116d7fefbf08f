//! Ed25519 keys as the contract stores and publishes them: PKCS#8 PEM for
//! private keys, SPKI PEM or a JWKS for public keys, and the RFC 7638
//! thumbprint that serves as `kid`.
//!
//! PEM files are split with the `pem` crate and JWKs are `jsonwebtoken`'s
//! own ([`Jwk`], [`JwkSet`], with their thumbprint); what this module adds
//! is the contract's part: Ed25519 only, `kid` = the thumbprint, and the
//! JWKS document as `chat-web` serves it ([`published`]).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse, ThumbprintHash,
};
pub use jsonwebtoken::jwk::{Jwk, JwkSet};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a key could not be read.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The text holds no PEM block of the expected kind.
    #[error("no {0} PEM block found")]
    NoKey(&'static str),
    /// The text is not readable as PEM (a block without its end, bad base64).
    #[error("not a readable PEM file: {0}")]
    Pem(#[from] pem::PemError),
    /// A PEM block is not an Ed25519 key of the expected kind.
    #[error("PEM block {index} is not an Ed25519 {kind} key: {reason}")]
    BadKey {
        /// Position of the block among those of its kind in the file, from 1.
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

/// The contents of the PEM blocks in `text` whose label is `label` (e.g.
/// `PUBLIC KEY`), in file order.
fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, KeyError> {
    Ok(pem::parse_many(text)?
        .into_iter()
        .filter(|block| block.tag() == label)
        .map(pem::Pem::into_contents)
        .collect())
}

/// The JWK of an Ed25519 public key, with its thumbprint as `kid`, `alg`
/// `EdDSA` and `use` `sig`.
pub fn jwk(key: &VerifyingKey) -> Jwk {
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
    jwk
}

/// The RFC 7638 thumbprint (SHA-256, base64url) of an Ed25519 public key.
pub fn thumbprint(key: &VerifyingKey) -> String {
    jwk(key).common.key_id.unwrap_or_default()
}

/// The Ed25519 key a JWK holds. The `kid` it claims is not trusted:
/// callers index keys by the thumbprint they compute themselves.
pub fn verifying_key(jwk: &Jwk) -> Result<VerifyingKey, KeyError> {
    let bad = || {
        KeyError::BadJwk(
            jwk.common
                .key_id
                .as_deref()
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect(),
        )
    };
    let AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
        curve: EllipticCurve::Ed25519,
        x,
        ..
    }) = &jwk.algorithm
    else {
        return Err(bad());
    };
    let bytes: [u8; 32] = URL_SAFE_NO_PAD
        .decode(x)
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// The JWKS of these public keys.
pub fn jwks<'a>(keys: impl IntoIterator<Item = &'a VerifyingKey>) -> JwkSet {
    JwkSet {
        keys: keys.into_iter().map(jwk).collect(),
    }
}

/// Reads a fetched JWKS document. Entries that `jsonwebtoken` cannot read
/// (a curve or key type it does not know) are left out, as every key that
/// is not Ed25519 is when verifying.
pub fn read_jwks(json: &[u8]) -> Result<JwkSet, serde_json::Error> {
    #[derive(Deserialize)]
    struct Entries {
        keys: Vec<serde_json::Value>,
    }
    let entries: Entries = serde_json::from_slice(json)?;
    Ok(JwkSet {
        keys: entries
            .keys
            .into_iter()
            .filter_map(|entry| serde_json::from_value(entry).ok())
            .collect(),
    })
}

/// `set` as `/.well-known/jwks.json` serves it: each key's members in the
/// order `kty`, `crv`, `x`, `kid`, `alg`, `use` (`jsonwebtoken` alone would
/// write the common members first).
pub fn published(set: &JwkSet) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct Published<'a> {
        keys: Vec<PublishedKey<'a>>,
    }
    #[derive(Serialize)]
    struct PublishedKey<'a> {
        #[serde(flatten)]
        algorithm: &'a AlgorithmParameters,
        kid: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        alg: Option<&'a KeyAlgorithm>,
        #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
        use_: Option<&'a PublicKeyUse>,
    }
    Published {
        keys: set
            .keys
            .iter()
            .map(|jwk| PublishedKey {
                algorithm: &jwk.algorithm,
                kid: jwk.common.key_id.as_deref().unwrap_or_default(),
                alg: jwk.common.key_algorithm.as_ref(),
                use_: jwk.common.public_key_use.as_ref(),
            })
            .collect(),
    }
}

/// Reads every `PRIVATE KEY` (PKCS#8) block of a PEM file, in file order.
pub fn signing_keys_from_pem(text: &str) -> Result<Vec<SigningKey>, KeyError> {
    let blocks = pem_blocks(text, "PRIVATE KEY")?;
    if blocks.is_empty() {
        return Err(KeyError::NoKey("PRIVATE KEY (PKCS#8)"));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, der)| {
            SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::BadKey {
                index: i + 1,
                kind: "PKCS#8 private",
                reason: e.to_string(),
            })
        })
        .collect()
}

/// Reads every `PUBLIC KEY` (SPKI) block of a PEM file, in file order.
pub fn verifying_keys_from_pem(text: &str) -> Result<Vec<VerifyingKey>, KeyError> {
    let blocks = pem_blocks(text, "PUBLIC KEY")?;
    if blocks.is_empty() {
        return Err(KeyError::NoKey("PUBLIC KEY (SPKI)"));
    }
    blocks
        .iter()
        .enumerate()
        .map(|(i, der)| {
            VerifyingKey::from_public_key_der(der).map_err(|e| KeyError::BadKey {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn a_key() -> VerifyingKey {
        let (_, public) = generate_pem_pair().expect("pair");
        verifying_keys_from_pem(&public).expect("key")[0]
    }

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
        let key = a_key();
        let jwk = jwk(&key);
        assert_eq!(verifying_key(&jwk).expect("round trip"), key);
        let mut other_curve = jwk.clone();
        if let AlgorithmParameters::OctetKeyPair(p) = &mut other_curve.algorithm {
            p.curve = EllipticCurve::P256;
        }
        assert!(verifying_key(&other_curve).is_err());
        let mut short = jwk;
        if let AlgorithmParameters::OctetKeyPair(p) = &mut short.algorithm {
            p.x = "AAAA".into();
        }
        assert!(verifying_key(&short).is_err());
    }

    #[test]
    fn the_published_jwks_has_the_contract_members_in_order() {
        let key = a_key();
        let x = URL_SAFE_NO_PAD.encode(key.as_bytes());
        let kid = thumbprint(&key);
        let json = serde_json::to_string(&published(&jwks([&key]))).expect("json");
        assert_eq!(
            json,
            format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"{kid}","alg":"EdDSA","use":"sig"}}]}}"#
            )
        );
    }

    #[test]
    fn a_fetched_jwks_keeps_what_it_can_read() {
        let key = a_key();
        let published = serde_json::to_value(published(&jwks([&key]))).expect("json");
        let mut document = serde_json::json!({ "keys": [
            { "kty": "OKP", "crv": "X448", "x": "AAAA", "kid": "other curve" },
            { "kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa" },
        ]});
        document["keys"]
            .as_array_mut()
            .expect("keys")
            .push(published["keys"][0].clone());
        let set = read_jwks(document.to_string().as_bytes()).expect("read");
        assert_eq!(set.keys.len(), 2, "the unknown curve is left out");
        let ed25519: Vec<_> = set
            .keys
            .iter()
            .filter_map(|k| verifying_key(k).ok())
            .collect();
        assert_eq!(ed25519, vec![key]);
        assert!(read_jwks(b"not json").is_err());
    }
}
