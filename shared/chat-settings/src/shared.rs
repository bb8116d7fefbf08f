//! Settings both services read, read once here so that they are validated
//! the same way everywhere.

use std::time::Duration;

use chat_core::RoomList;
use chat_core::claims::{DEFAULT_AUDIENCE, DEFAULT_ISSUER};

use crate::env::Env;
use crate::error::SettingError;

/// What a room token says and how long past its expiry it is honoured: the
/// web service mints with these, gateways verify with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `JWT_ISSUER`: the tokens' `iss` (default `chat-web`).
    pub issuer: String,
    /// `JWT_AUDIENCE`: the tokens' `aud` (default `chat-gateway`).
    pub audience: String,
    /// `TOKEN_EXPIRY_GRACE_S`: how long a connection may outlive its token
    /// without `refresh` (default 30 s, at most an hour).
    pub expiry_grace: Duration,
}

impl TokenSettings {
    /// Reads `JWT_ISSUER`, `JWT_AUDIENCE` and `TOKEN_EXPIRY_GRACE_S`.
    pub fn read(env: &Env<'_>) -> Result<Self, SettingError> {
        Ok(Self {
            issuer: env
                .get("JWT_ISSUER")
                .unwrap_or_else(|| DEFAULT_ISSUER.into()),
            audience: env
                .get("JWT_AUDIENCE")
                .unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            expiry_grace: env.seconds("TOKEN_EXPIRY_GRACE_S", 30, 0..=3600)?,
        })
    }
}

/// `ROOMS`: the configured rooms, comma-separated (default
/// `General,Sports,Music`).
#[derive(Debug, Clone, Copy)]
pub struct RoomsSetting;

impl RoomsSetting {
    /// Reads `ROOMS`.
    pub fn read(env: &Env<'_>) -> Result<RoomList, SettingError> {
        let list = env.get("ROOMS").unwrap_or_else(|| RoomList::DEFAULT.into());
        RoomList::parse(&list).map_err(|e| SettingError::invalid("ROOMS", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_settings_default_to_the_contract() -> Result<(), SettingError> {
        let t = TokenSettings::read(&Env::from_pairs(&[]))?;
        assert_eq!(
            (t.issuer.as_str(), t.audience.as_str()),
            ("chat-web", "chat-gateway")
        );
        assert_eq!(t.expiry_grace, Duration::from_secs(30));
        Ok(())
    }

    #[test]
    fn a_bad_grace_names_its_variable() {
        for value in ["soon", "-1", "3601"] {
            let vars = [("TOKEN_EXPIRY_GRACE_S", value)];
            let err = TokenSettings::read(&Env::from_pairs(&vars)).expect_err("refused");
            assert_eq!(err.name(), "TOKEN_EXPIRY_GRACE_S", "{err}");
        }
    }

    #[test]
    fn rooms_default_and_refuse_bad_names() -> Result<(), SettingError> {
        assert_eq!(RoomsSetting::read(&Env::from_pairs(&[]))?.iter().count(), 3);
        assert_eq!(
            RoomsSetting::read(&Env::from_pairs(&[("ROOMS", "A,B")]))?
                .iter()
                .count(),
            2
        );
        let err = RoomsSetting::read(&Env::from_pairs(&[("ROOMS", "a b")])).expect_err("refused");
        assert_eq!(err.name(), "ROOMS");
        Ok(())
    }
}
