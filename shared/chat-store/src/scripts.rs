//! The Lua scripts: the room scripts, each prefixed with the shared prelude
//! (`lua/prelude.lua`, which reads the room's keys), the revocation, and the
//! barrier written before each `WAIT` for replicas.
//!
//! Scripts run by `EVALSHA`, falling back to `EVAL` (fred's
//! `evalsha_with_reload`) after Redis restarted and forgot them.

use std::sync::LazyLock;

use fred::types::scripts::Script;

/// Declares room scripts, each `lua/prelude.lua` followed by its file:
/// each concept module declares the scripts it runs.
macro_rules! script {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)+) => {
        $(
            $(#[$doc])*
            static $name: std::sync::LazyLock<fred::types::scripts::Script> =
                std::sync::LazyLock::new(|| {
                    fred::types::scripts::Script::from_lua(concat!(
                        include_str!("lua/prelude.lua"),
                        include_str!($file)
                    ))
                });
        )+
    };
}
pub(crate) use script;

/// Mark a web session as logged out and publish its `sid`, in one step.
pub static REVOKE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/revoke.lua")));

/// Write a barrier in a hash slot before a `WAIT` on the same connection,
/// and find which messages to confirm are missing (`lua/barrier.lua`); sent
/// with `EVAL`, in one pipeline with the `WAIT`.
pub const BARRIER: &str = include_str!("lua/barrier.lua");
