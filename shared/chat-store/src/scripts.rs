//! The Lua scripts: the room scripts, each prefixed with the shared prelude
//! (`lua/prelude.lua`, which reads the room's keys), the revocation, and the
//! barrier written before each `WAIT` for replicas.
//!
//! Scripts run by `EVALSHA`, falling back to `EVAL` (fred's
//! `evalsha_with_reload`) after Redis restarted and forgot them.

use std::sync::LazyLock;

use fred::types::scripts::Script;

macro_rules! script {
    ($name:ident, $file:literal, $doc:literal) => {
        #[doc = $doc]
        pub static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::from_lua(concat!(
                include_str!("lua/prelude.lua"),
                include_str!($file)
            ))
        });
    };
}

script!(
    JOIN,
    "lua/join.lua",
    "Register a connection and snapshot members and history."
);
script!(
    LEAVE,
    "lua/leave.lua",
    "Release a connection; schedule `user exited` after the grace."
);
script!(
    SEND,
    "lua/send.lua",
    "Store a message and publish it, atomically."
);
script!(
    HISTORY,
    "lua/history.lua",
    "A page of messages before an id."
);
script!(
    HISTORY_AFTER,
    "lua/history_after.lua",
    "A page of messages after an id."
);
script!(
    HEARTBEAT,
    "lua/heartbeat.lua",
    "Refresh a node's heartbeat and read the data epoch."
);
script!(
    SWEEP,
    "lua/sweep.lua",
    "Sweep dead nodes and announce users whose exit grace passed."
);
script!(
    RESTORE,
    "lua/restore.lua",
    "Register again the connections Redis lost."
);
script!(
    EDIT,
    "lua/edit.lua",
    "Edit a message (author only) and publish the edit, atomically."
);
script!(
    DELETE,
    "lua/delete.lua",
    "Delete a message (author only) and publish the deletion, atomically."
);
script!(
    CHANGES,
    "lua/changes.lua",
    "The edits and deletions since an id, of messages up to it."
);
script!(
    READ,
    "lua/read.lua",
    "Move a user's read marker forward; answer their unread count."
);
script!(
    TYPING,
    "lua/typing.lua",
    "Publish `typing` unless the user's throttle key is set (SET NX PX)."
);
script!(DEREGISTER, "lua/deregister.lua", "Remove a draining node.");

/// Mark a web session as logged out and publish its `sid`, in one step.
pub static REVOKE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/revoke.lua")));

/// Write a barrier in a hash slot before a `WAIT` on the same connection,
/// and find which messages to confirm are missing (`lua/barrier.lua`); sent
/// with `EVAL`, in one pipeline with the `WAIT`.
pub const BARRIER: &str = include_str!("lua/barrier.lua");
