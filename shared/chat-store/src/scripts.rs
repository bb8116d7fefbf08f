//! How the room scripts are declared: each prefixed with the shared prelude
//! (`lua/prelude.lua`, which reads the room's keys), in the module of the
//! concept that runs it. The two scripts outside a room (the revocation, the
//! barrier written before each `WAIT` for replicas) are declared where they
//! run, too.
//!
//! Scripts run by `EVALSHA`, falling back to `EVAL` (fred's
//! `evalsha_with_reload`) after Redis restarted and forgot them.

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
