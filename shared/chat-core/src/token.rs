//! Minting and verifying room tokens.
//!
//! The web service holds a [`TokenSigner`]; every gateway holds a
//! [`TokenVerifier`]. Verification follows RFC 8725: only `EdDSA`, only
//! configured keys picked by `kid`, and every claim the contract requires
//! present and checked.

use std::collections::HashMap;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use hkdf::Hkdf;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sha2::Sha256;
use thiserror::Error;

use crate::claims::RoomClaims;
use crate::codes::ErrorCode;
use crate::keys::{self, JwkSet, KeyError};
use crate::user::{DisplayName, UserId};

/// The HKDF salt of [`TokenSigner::derive_secret`]: keeps its secrets apart
/// from anything else ever derived from the same key.
const DERIVE_SALT: &[u8] = b"chat room-token signing key: derived secrets v1";

/// Seconds of clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_S: u64 = 5;

/// Why a token was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum VerifyError {
    /// Past its `exp` (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// Signed with a `kid` this verifier does not know.
    #[error("token signed by unknown key {0:?}")]
    UnknownKey(String),
    /// Anything else: malformed, wrong algorithm, bad signature, wrong claims.
    #[error("token invalid: {0}")]
    Invalid(String),
}

impl VerifyError {
    /// The contract's code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::TokenExpired,
            Self::UnknownKey(_) | Self::Invalid(_) => ErrorCode::TokenInvalid,
        }
    }
}

/// Why a token could not be minted.
#[derive(Debug, Error)]
pub enum SignError {
    /// The signing key could not be used.
    #[error("could not load the signing key: {0}")]
    Key(String),
    /// The JWT library refused to sign.
    #[error("could not sign the room token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Mints room tokens with the newest of the configured private keys and
/// publishes the public halves of all of them.
pub struct TokenSigner {
    kid: String,
    key: EncodingKey,
    signing_key: SigningKey,
    public_keys: Vec<VerifyingKey>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// From a PEM file of one or more PKCS#8 Ed25519 keys; the last one signs.
    pub fn from_pkcs8_pem(text: &str) -> Result<Self, KeyError> {
        let keys = keys::signing_keys_from_pem(text)?;
        let newest = keys.last().ok_or(KeyError::NoKey("PRIVATE KEY (PKCS#8)"))?;
        let der = newest.to_pkcs8_der().map_err(|e| KeyError::BadKey {
            index: keys.len(),
            kind: "PKCS#8 private",
            reason: e.to_string(),
        })?;
        Ok(Self {
            kid: keys::thumbprint(&newest.verifying_key()),
            key: EncodingKey::from_ed_der(der.as_bytes()),
            signing_key: newest.clone(),
            public_keys: keys.iter().map(|k| k.verifying_key()).collect(),
        })
    }

    /// A 32-byte secret for `purpose` (a fixed label, one per use), derived
    /// with HKDF-SHA-256 from the key that signs: a symmetric key only the
    /// holder of the private key has, the same on every replica that holds
    /// it, without a second secret to deploy. It changes when the signing
    /// key does.
    pub fn derive_secret(&self, purpose: &str) -> [u8; 32] {
        let hkdf = Hkdf::<Sha256>::new(Some(DERIVE_SALT), self.signing_key.as_bytes());
        let mut secret = [0u8; 32];
        hkdf.expand(purpose.as_bytes(), &mut secret)
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        secret
    }

    /// The `kid` of the key that signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS of every configured key, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        keys::jwks(&self.public_keys)
    }

    /// Signs `claims` as an EdDSA JWT with `typ` = `JWT` and this signer's `kid`.
    pub fn mint(&self, claims: &RoomClaims) -> Result<String, SignError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.key)?)
    }
}

/// Checks room tokens against a fixed set of Ed25519 public keys.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("kids", &self.keys.keys())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for tokens of `issuer` for `audience`, signed by one of `keys`.
    pub fn new<'a>(
        keys: impl IntoIterator<Item = &'a VerifyingKey>,
        issuer: &str,
        audience: &str,
    ) -> Self {
        let keys = keys
            .into_iter()
            .filter_map(|k| {
                let jwk = keys::jwk(k);
                let decoding = DecodingKey::from_jwk(&jwk).ok()?;
                Some((jwk.common.key_id?, decoding))
            })
            .collect();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.leeway = LEEWAY_S;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self { keys, validation }
    }

    /// A verifier from an SPKI PEM file that may hold several keys.
    pub fn from_spki_pem(text: &str, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let keys = keys::verifying_keys_from_pem(text)?;
        Ok(Self::new(&keys, issuer, audience))
    }

    /// A verifier from a JWKS; keys that are not Ed25519 are skipped.
    pub fn from_jwks(jwks: &JwkSet, issuer: &str, audience: &str) -> Self {
        let keys: Vec<VerifyingKey> = jwks
            .keys
            .iter()
            .filter_map(|k| keys::verifying_key(k).ok())
            .collect();
        Self::new(&keys, issuer, audience)
    }

    /// How many keys this verifier trusts.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` and returns its claims, with `name` and `sub` checked
    /// as plain text (`name` without bidirectional-override and zero-width
    /// characters). `now` (seconds since the epoch) bounds `iat`.
    pub fn verify(&self, token: &str, now: u64) -> Result<RoomClaims, VerifyError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(VerifyError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        if header.jwk.is_some() || header.jku.is_some() || header.x5u.is_some() {
            return Err(VerifyError::Invalid(
                "keys carried in the token are not accepted".into(),
            ));
        }
        let kid = header
            .kid
            .ok_or_else(|| VerifyError::Invalid("no kid".into()))?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| VerifyError::UnknownKey(kid.clone()))?;
        let data = jsonwebtoken::decode::<RoomClaims>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => VerifyError::Expired,
                _ => VerifyError::Invalid(e.to_string()),
            },
        )?;
        let mut claims = data.claims;
        if claims.iat > now + LEEWAY_S {
            return Err(VerifyError::Invalid("issued in the future".into()));
        }
        if claims.exp < claims.iat {
            return Err(VerifyError::Invalid("expires before it was issued".into()));
        }
        UserId::parse(&claims.sub).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        DisplayName::parse(&claims.name).map_err(|e| VerifyError::Invalid(e.to_string()))?;
        // Another minter may not clean names: never show one that spoofs another.
        claims.name = DisplayName::sanitize(&claims.name, &claims.sub)
            .as_str()
            .to_owned();
        if claims.jti.is_empty() {
            return Err(VerifyError::Invalid("empty jti".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const NOW: u64 = 1_800_000_000;

    fn claims() -> RoomClaims {
        RoomClaims {
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
            sub: "00u1".into(),
            name: "Ann".into(),
            room: "General".into(),
            iat: NOW,
            exp: NOW + 300,
            jti: "j1".into(),
            sid: Some("s1".into()),
            admin: false,
        }
    }

    fn pair() -> (TokenSigner, TokenVerifier) {
        let (private, public) = keys::generate_pem_pair().expect("pair");
        let signer = TokenSigner::from_pkcs8_pem(&private).expect("signer");
        let verifier = TokenVerifier::from_spki_pem(&public, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
            .expect("verifier");
        (signer, verifier)
    }

    #[test]
    fn derived_secrets_differ_by_purpose_and_key_and_stay_put() {
        let (signer, _) = pair();
        let (other, _) = pair();
        let a = signer.derive_secret("a");
        assert_eq!(a, signer.derive_secret("a"));
        assert_ne!(a, signer.derive_secret("b"));
        assert_ne!(a, other.derive_secret("a"));
    }

    fn segments(token: &str) -> Vec<String> {
        token.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn a_minted_token_verifies_and_names_its_key() {
        let (signer, verifier) = pair();
        let token = signer.mint(&claims()).expect("mint");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(signer.kid()));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        // exp is checked against the real clock, so verify near issue time.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let fresh = RoomClaims {
            iat: now,
            exp: now + 300,
            ..claims()
        };
        let token = signer.mint(&fresh).expect("mint");
        assert_eq!(verifier.verify(&token, now), Ok(fresh));
    }

    #[test]
    fn names_lose_bidirectional_overrides_and_zero_width_characters() {
        let (signer, verifier) = pair();
        let spoof = RoomClaims {
            name: "\u{202E}nimda\u{200B}".into(),
            exp: u64::MAX / 2,
            ..claims()
        };
        let token = signer.mint(&spoof).expect("mint");
        let verified = verifier.verify(&token, NOW).expect("verifies");
        assert_eq!(verified.name, "nimda");
    }

    #[test]
    fn expired_tokens_are_token_expired() {
        let (signer, verifier) = pair();
        let old = RoomClaims {
            iat: 1_000,
            exp: 1_300,
            ..claims()
        };
        let token = signer.mint(&old).expect("mint");
        assert_eq!(
            verifier.verify(&token, NOW).map_err(|e| e.code()),
            Err(ErrorCode::TokenExpired)
        );
    }

    #[test]
    fn wrong_issuer_audience_or_key_are_token_invalid() {
        let (signer, verifier) = pair();
        let (other_signer, _) = pair();
        let far = RoomClaims {
            exp: u64::MAX / 2,
            ..claims()
        };
        for bad in [
            RoomClaims {
                iss: "someone-else".into(),
                ..far.clone()
            },
            RoomClaims {
                aud: "other".into(),
                ..far.clone()
            },
            RoomClaims {
                name: "x".repeat(65),
                ..far.clone()
            },
            RoomClaims {
                sub: String::new(),
                ..far.clone()
            },
        ] {
            let token = signer.mint(&bad).expect("mint");
            assert!(
                matches!(verifier.verify(&token, NOW), Err(VerifyError::Invalid(_))),
                "{bad:?}"
            );
        }
        let token = other_signer.mint(&far).expect("mint");
        assert!(matches!(
            verifier.verify(&token, NOW),
            Err(VerifyError::UnknownKey(_))
        ));
    }

    #[test]
    fn alg_none_hmac_and_tampered_tokens_are_refused() {
        let (signer, verifier) = pair();
        let far = RoomClaims {
            exp: u64::MAX / 2,
            ..claims()
        };
        let token = signer.mint(&far).expect("mint");
        let parts = segments(&token);

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(verifier.verify(&unsigned, NOW).is_err());

        let hs_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            signer.kid()
        ));
        let hmac = format!("{hs_header}.{}.{}", parts[1], parts[2]);
        assert!(matches!(
            verifier.verify(&hmac, NOW),
            Err(VerifyError::Invalid(_))
        ));

        let evil = RoomClaims {
            room: "Sports".into(),
            ..far
        };
        let evil_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).expect("json"));
        let tampered = format!("{}.{evil_payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            verifier.verify(&tampered, NOW),
            Err(VerifyError::Invalid(_))
        ));

        assert!(verifier.verify("not a token", NOW).is_err());
    }

    #[test]
    fn missing_required_claims_are_refused() {
        let (signer, verifier) = pair();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid().to_owned());
        let no_room = serde_json::json!({
            "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE, "sub": "u", "name": "n",
            "iat": NOW, "exp": u64::MAX / 2, "jti": "j"
        });
        let token = jsonwebtoken::encode(&header, &no_room, &signer.key).expect("encode");
        assert!(matches!(
            verifier.verify(&token, NOW),
            Err(VerifyError::Invalid(_))
        ));
    }

    #[test]
    fn rotation_signs_with_the_newest_and_publishes_all() {
        let (old_private, _) = keys::generate_pem_pair().expect("pair");
        let (new_private, _) = keys::generate_pem_pair().expect("pair");
        let signer =
            TokenSigner::from_pkcs8_pem(&format!("{old_private}{new_private}")).expect("signer");
        let jwks = signer.jwks();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(jwks.keys[1].common.key_id.as_deref(), Some(signer.kid()));
        let verifier = TokenVerifier::from_jwks(&jwks, DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        assert_eq!(verifier.key_count(), 2);
        let far = RoomClaims {
            exp: u64::MAX / 2,
            ..claims()
        };
        assert!(
            verifier
                .verify(&signer.mint(&far).expect("mint"), NOW)
                .is_ok()
        );
    }
}
