//! One behaviour suite for every backend: each test takes a factory that
//! makes nodes sharing one store, so the Redis and in-memory backends cannot
//! drift apart.

mod rooms;
pub(crate) use rooms::*;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_core::events::Change;
use chat_core::events::RoomEvent;
use chat_core::{MessageId, MessageText, RoomName, UserRef};
use chat_store::backend::{Backend, FanoutEvent, Subscription};
use chat_store::history::{ChangeOutcome, MessageChange, NewMessage};
use chat_store::presence::{Connection, JoinOutcome, JoinRequest, Liveness, Restore, Snapshot};
use chat_store::rooms::Standing;

/// Makes nodes that share one store.
pub(crate) trait Nodes {
    /// A handle acting for `node`.
    fn node(&self, node: &str) -> Arc<dyn Backend>;
}

fn conn(room: &RoomName, conn: &str, user: &str) -> Connection {
    Connection {
        room: room.clone(),
        conn: conn.into(),
        user: UserRef {
            id: user.into(),
            name: format!("{user} name"),
        },
    }
}

async fn join(store: &dyn Backend, c: &Connection) -> Result<Snapshot> {
    let request = JoinRequest {
        connection: c,
        session: None,
        since: None,
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    match store.join(request, false).await? {
        JoinOutcome::Joined(s) => Ok(s),
        JoinOutcome::Revoked => bail!("unexpectedly revoked"),
        JoinOutcome::Unknown => bail!("unexpectedly unknown"),
    }
}

/// Joins `c` the way a replica does: its room tracked first.
async fn join_tracked(store: &dyn Backend, c: &Connection) -> Result<Snapshot> {
    store.track(std::slice::from_ref(&c.room)).await?;
    join(store, c).await
}

/// How many users `room` counts.
async fn members_in(store: &dyn Backend, room: &RoomName) -> Result<u64> {
    Ok(store.member_counts(std::slice::from_ref(room)).await?[0].1)
}

fn text(t: &str) -> Result<MessageText> {
    MessageText::parse(t.into(), 2000).map_err(anyhow::Error::msg)
}

/// An id after every message of the tests.
fn far_future() -> chat_core::MessageId {
    chat_core::MessageId {
        ms: 99_999_999_999_999,
        seq: 0,
    }
}

async fn next(events: &mut Subscription) -> Result<RoomEvent> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await?
            .context("closed")?;
        if let FanoutEvent::Room(_, event) = e {
            return Ok(event.event);
        }
    }
}

/// The next event of `room` (events of other rooms are skipped).
async fn next_in(events: &mut Subscription, room: &RoomName) -> Result<RoomEvent> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await?
            .context("closed")?;
        if let FanoutEvent::Room(r, event) = e
            && r == *room
        {
            return Ok(event.event);
        }
    }
}

/// Subscribes, follows `room`, and waits until the subscription provably
/// works: a message sent to the room, and a revocation, arrive.
async fn listen(store: &dyn Backend, room: &RoomName) -> Result<Subscription> {
    let mut events = store.subscribe()?;
    store.follow(room).await?;
    let marker = UserRef {
        id: "marker".into(),
        name: "marker".into(),
    };
    let (mut message, mut revocation) = (false, false);
    for _ in 0..100 {
        store
            .send(NewMessage {
                room,
                user: &marker,
                text: &text("ready")?,
                floor: None,
                trace: None,
                standing: Standing {
                    configured: true,
                    ..Standing::default()
                },
            })
            .await?
            .id()
            .context("the message was refused")?;
        store
            .revoke_session("listen-marker", Duration::from_secs(1))
            .await?;
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(100), events.recv()).await
        {
            match event {
                FanoutEvent::Room(..) => message = true,
                FanoutEvent::Revoked(_) => revocation = true,
                FanoutEvent::Resubscribed | FanoutEvent::AccessLost(..) => {}
            }
        }
        if message && revocation {
            return Ok(events);
        }
    }
    bail!("subscription never delivered")
}

pub(crate) async fn two_tabs_on_two_nodes_at_once_enter_once_and_exit_once(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = RoomName::parse("General")?;
    let mut events = listen(a.as_ref(), &room).await?;
    let (ca, cb) = (conn(&room, "a1", "ann"), conn(&room, "b1", "ann"));
    let (sa, sb) = tokio::join!(join(a.as_ref(), &ca), join(b.as_ref(), &cb));
    assert_eq!(sa?.members.iter().filter(|m| m.id == "ann").count(), 1);
    assert_eq!(sb?.members.iter().filter(|m| m.id == "ann").count(), 1);
    let due_a = a.leave(&ca, Duration::ZERO).await?;
    let due_b = b.leave(&cb, Duration::ZERO).await?;
    assert!(
        due_a.is_none() != due_b.is_none(),
        "the last connection's leave, and only it, owes the exit"
    );
    let (first, second) = tokio::join!(a.announce_exits(&room, 100), b.announce_exits(&room, 100));
    assert_eq!(first?.users_exited + second?.users_exited, 1);
    assert!(matches!(next(&mut events).await?, RoomEvent::UserEntered(u) if u.id == "ann"));
    assert!(matches!(next(&mut events).await?, RoomEvent::UserExited(u) if u.id == "ann"));
    Ok(())
}

pub(crate) async fn a_user_back_within_the_grace_causes_no_events(nodes: &dyn Nodes) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("General")?;
    let first = conn(&room, "a1", "bob");
    join(a.as_ref(), &first).await?;
    let mut events = listen(a.as_ref(), &room).await?;
    a.leave(&first, Duration::from_secs(60)).await?;
    let snapshot = join(a.as_ref(), &conn(&room, "a2", "bob")).await?;
    assert!(
        snapshot.members.iter().any(|m| m.id == "bob"),
        "still listed during the grace"
    );
    let exits = a.announce_exits(&room, 100).await?;
    assert_eq!((exits.users_exited, exits.next), (0, None));
    a.send(NewMessage {
        room: &room,
        user: &first.user,
        text: &text("after")?,
        floor: None,
        trace: None,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    })
    .await?
    .id()
    .context("the message was refused")?;
    assert!(
        matches!(next(&mut events).await?, RoomEvent::MessageReceived(_)),
        "no presence event before it"
    );
    Ok(())
}

pub(crate) async fn a_dead_node_is_swept_once_in_its_own_rooms_and_its_users_exit_once(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (dead, s1, s2) = (
        nodes.node("dead"),
        nodes.node("sweeper-1"),
        nodes.node("sweeper-2"),
    );
    let (music, jazz, quiet) = (
        RoomName::parse("Music")?,
        RoomName::parse("Jazz")?,
        RoomName::parse("Quiet")?,
    );
    dead.heartbeat(Duration::from_millis(200)).await?;
    s1.heartbeat(Duration::from_secs(60)).await?;
    s2.heartbeat(Duration::from_secs(60)).await?;
    join_tracked(dead.as_ref(), &conn(&music, "d1", "cy")).await?;
    join_tracked(dead.as_ref(), &conn(&jazz, "d2", "dee")).await?;
    join_tracked(s1.as_ref(), &conn(&music, "l1", "di")).await?;
    // A room the dead node never was in, with an exit to come: untouched.
    let leaving = conn(&quiet, "q1", "eve");
    join_tracked(s1.as_ref(), &leaving).await?;
    s1.leave(&leaving, Duration::from_secs(60)).await?;
    let mut events = listen(s1.as_ref(), &music).await?;
    // The liveness TTL is the thing under test: let it run out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a, b) = tokio::join!(s1.sweep_dead(Duration::ZERO), s2.sweep_dead(Duration::ZERO));
    let (a, b) = (a?, b?);
    assert_eq!(a.nodes + b.nodes, 1, "one sweeper took it: {a:?} {b:?}");
    assert_eq!(a.rooms + b.rooms, 2, "its two rooms, and no other");
    assert_eq!(a.connections_removed + b.connections_removed, 2);
    let mut owed: Vec<RoomName> = a
        .exits
        .iter()
        .chain(&b.exits)
        .map(|(r, _)| r.clone())
        .collect();
    owed.sort();
    assert_eq!(
        owed,
        [jazz.clone(), music.clone()],
        "the sweeper owes their exits"
    );
    assert_eq!(
        members_in(s1.as_ref(), &quiet).await?,
        1,
        "eve is within her grace"
    );
    for room in [&music, &jazz] {
        let (x, y) = tokio::join!(s1.announce_exits(room, 100), s2.announce_exits(room, 100));
        let (x, y) = (x?, y?);
        assert_eq!(
            x.users_exited + y.users_exited,
            1,
            "{room}: one exit, announced once"
        );
        assert_eq!((x.next, y.next), (None, None));
    }
    assert!(matches!(next(&mut events).await?, RoomEvent::UserExited(u) if u.id == "cy"));
    assert_eq!(members_in(s1.as_ref(), &music).await?, 1, "di stays");
    assert_eq!(members_in(s1.as_ref(), &jazz).await?, 0);
    let again = s2.sweep_dead(Duration::ZERO).await?;
    assert_eq!(
        (again.nodes, again.connections_removed),
        (0, 0),
        "swept once"
    );
    Ok(())
}

pub(crate) async fn a_node_taken_as_dead_while_alive_carries_on_under_a_new_id(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (stalled, sweeper) = (nodes.node("stalled"), nodes.node("sweeper"));
    let (first, second) = (RoomName::parse("Stall-1")?, RoomName::parse("Stall-2")?);
    stalled.heartbeat(Duration::from_millis(200)).await?;
    sweeper.heartbeat(Duration::from_secs(60)).await?;
    let (fay, gus) = (conn(&first, "s1", "fay"), conn(&second, "s2", "gus"));
    join_tracked(stalled.as_ref(), &fay).await?;
    join_tracked(stalled.as_ref(), &gus).await?;
    sweeper.follow(&second).await?;
    let mut events = listen(sweeper.as_ref(), &first).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swept = sweeper.sweep_dead(Duration::ZERO).await?;
    assert_eq!(swept.connections_removed, 2);
    // One exit is announced before the stalled node comes back, the other not.
    assert_eq!(sweeper.announce_exits(&first, 100).await?.users_exited, 1);
    let beat = stalled.heartbeat(Duration::from_secs(60)).await?;
    assert_eq!(
        beat.liveness,
        Liveness::Replaced {
            previous: "stalled".into()
        }
    );
    assert_eq!(stalled.node(), "stalled.1");
    stalled.track(&[first.clone(), second.clone()]).await?;
    for c in [&fay, &gus] {
        let restored = stalled
            .restore(
                &c.room,
                std::slice::from_ref(c),
                Restore::TakingOver("stalled"),
            )
            .await?;
        assert_eq!(restored, 1);
    }
    assert!(
        matches!(next_in(&mut events, &first).await?, RoomEvent::UserExited(u) if u.id == "fay")
    );
    assert!(
        matches!(next_in(&mut events, &first).await?, RoomEvent::UserEntered(u) if u.id == "fay")
    );
    // Back within the grace: no event at all.
    assert_eq!(sweeper.announce_exits(&second, 100).await?.users_exited, 0);
    say(sweeper.as_ref(), &second, &gus.user, "still here").await?;
    assert!(matches!(
        next_in(&mut events, &second).await?,
        RoomEvent::MessageReceived(_)
    ));
    assert_eq!(members_in(sweeper.as_ref(), &first).await?, 1);
    assert_eq!(members_in(sweeper.as_ref(), &second).await?, 1);
    assert_eq!(
        sweeper.sweep_dead(Duration::ZERO).await?.nodes,
        0,
        "the new id is alive"
    );
    Ok(())
}

pub(crate) async fn a_draining_node_hands_its_exits_over_to_a_survivor(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (draining, survivor) = (nodes.node("draining"), nodes.node("survivor"));
    let room = RoomName::parse("Handover")?;
    draining.heartbeat(Duration::from_secs(60)).await?;
    survivor.heartbeat(Duration::from_secs(60)).await?;
    let c = conn(&room, "h1", "hal");
    join_tracked(draining.as_ref(), &c).await?;
    let mut events = listen(survivor.as_ref(), &room).await?;
    assert!(draining.leave(&c, Duration::ZERO).await?.is_some());
    draining.deregister(&[]).await?;
    let swept = survivor.sweep_dead(Duration::ZERO).await?;
    assert_eq!((swept.nodes, swept.connections_removed), (1, 0));
    assert_eq!(
        swept.exits.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        [&room]
    );
    assert_eq!(survivor.announce_exits(&room, 100).await?.users_exited, 1);
    assert!(matches!(next(&mut events).await?, RoomEvent::UserExited(u) if u.id == "hal"));
    Ok(())
}

pub(crate) async fn a_followed_room_misses_nothing_and_an_unfollowed_one_is_quiet(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let (room, other) = (RoomName::parse("Followed")?, RoomName::parse("Other")?);
    let user = UserRef {
        id: "u".into(),
        name: "U".into(),
    };
    let mut events = listen(a.as_ref(), &other).await?;
    // Once `follow` returned, the very next message arrives: no retry, no wait.
    a.follow(&room).await?;
    let id = say(a.as_ref(), &room, &user, "first").await?;
    assert!(matches!(next(&mut events).await?, RoomEvent::MessageReceived(m) if m.id == id));
    a.unfollow(&room).await?;
    // A round trip of another room's, so that Redis has read the unsubscription.
    let id = say(a.as_ref(), &other, &user, "marker").await?;
    assert!(matches!(next(&mut events).await?, RoomEvent::MessageReceived(m) if m.id == id));
    say(a.as_ref(), &room, &user, "unheard").await?;
    let id = say(a.as_ref(), &other, &user, "heard").await?;
    assert!(
        matches!(next(&mut events).await?, RoomEvent::MessageReceived(m) if m.id == id && m.room == "Other")
    );
    let quiet = tokio::time::timeout(Duration::from_millis(300), next(&mut events)).await;
    assert!(quiet.is_err(), "an event of a room not followed: {quiet:?}");
    Ok(())
}

pub(crate) async fn messages_are_stored_in_order_and_paged_back(nodes: &dyn Nodes) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("General")?;
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let mut ids = Vec::new();
    for i in 0..120 {
        let t = text(&format!("m{i}"))?;
        ids.push(
            a.send(NewMessage {
                room: &room,
                user: &user,
                text: &t,
                floor: None,
                trace: None,
                standing: Standing {
                    configured: true,
                    ..Standing::default()
                },
            })
            .await?
            .id()
            .context("the message was refused")?,
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let page = a.history_before(&room, ids[50], 10).await?;
    let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, (40..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let after = a.history_after(&room, ids[110], 5).await?;
    assert_eq!(
        after.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[111..116].to_vec()
    );
    assert_eq!(after[0].text, "m111");
    let first = &page[0];
    assert_eq!(first.user, user);
    assert_eq!(first.room, "General");
    assert_eq!(first.ts, first.id.ms);

    let c = conn(&room, "x", "v");
    let since = JoinRequest {
        connection: &c,
        session: None,
        since: Some(ids[110]),
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    let JoinOutcome::Joined(s) = a.join(since, false).await? else {
        bail!("revoked")
    };
    assert!(s.recovered);
    assert_eq!(s.history.len(), 9);
    let c2 = conn(&room, "y", "w");
    let old = JoinRequest {
        connection: &c2,
        session: None,
        since: Some(ids[5]),
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    let JoinOutcome::Joined(s) = a.join(old, false).await? else {
        bail!("revoked")
    };
    assert!(!s.recovered, "more than 100 came after since");
    assert_eq!(s.history.len(), 100);
    Ok(())
}

pub(crate) async fn a_floor_keeps_ids_increasing(nodes: &dyn Nodes) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Fresh")?;
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let far_future = chat_core::MessageId {
        ms: 99_999_999_999_999,
        seq: 7,
    };
    let t = text("x")?;
    let id = a
        .send(NewMessage {
            room: &room,
            user: &user,
            text: &t,
            floor: Some(far_future),
            trace: None,
            standing: Standing {
                configured: true,
                ..Standing::default()
            },
        })
        .await?
        .id()
        .context("the message was refused")?;
    assert_eq!(id, far_future.next());
    Ok(())
}

pub(crate) async fn a_revoked_session_cannot_join_and_subscribers_hear_of_it(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("General")?;
    let mut events = listen(a.as_ref(), &room).await?;
    a.revoke_session("sess-1", Duration::from_secs(60)).await?;
    let asked = [
        "sess-2".to_owned(),
        "sess-1".to_owned(),
        "sess-3".to_owned(),
    ];
    assert_eq!(a.revoked_among(&asked).await?, ["sess-1"]);
    assert!(a.revoked_among(&[]).await?.is_empty());
    let heard = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await?
        .context("closed")?;
    assert!(matches!(heard, FanoutEvent::Revoked(sid) if sid == "sess-1"));
    let c = conn(&room, "a1", "ann");
    let request = JoinRequest {
        connection: &c,
        session: Some("sess-1"),
        since: None,
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    assert!(matches!(
        a.join(request, false).await?,
        JoinOutcome::Revoked
    ));
    assert_eq!(
        a.member_counts(std::slice::from_ref(&room)).await?[0].1,
        0,
        "a refused join leaves no trace"
    );
    Ok(())
}

pub(crate) async fn restore_is_silent_after_data_loss_and_loud_after_a_sweep(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Sports")?;
    let mut events = listen(a.as_ref(), &room).await?;
    let c = conn(&room, "a1", "eve");
    let silently = |c: &Connection| {
        let (a, room, c) = (a.clone(), room.clone(), c.clone());
        async move {
            a.restore(&room, std::slice::from_ref(&c), Restore::Silently)
                .await
        }
    };
    assert_eq!(silently(&c).await?, 1);
    assert_eq!(silently(&c).await?, 0, "already registered");
    assert_eq!(a.member_counts(std::slice::from_ref(&room)).await?[0].1, 1);
    let other = conn(&room, "a2", "fay");
    a.restore(&room, std::slice::from_ref(&other), Restore::Announced)
        .await?;
    assert!(
        matches!(next(&mut events).await?, RoomEvent::UserEntered(u) if u.id == "fay"),
        "eve was silent"
    );
    Ok(())
}

pub(crate) async fn typing_is_throttled_per_user_across_nodes_and_never_stored(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = RoomName::parse("Typing")?;
    let mut events = listen(a.as_ref(), &room).await?;
    let before = a.history_before(&room, far_future(), 100).await?;
    let ann = conn(&room, "a1", "ann").user;
    let bob = conn(&room, "b1", "bob").user;
    let throttle = Duration::from_millis(400);
    assert!(a.typing(&room, &ann, throttle).await?);
    assert!(
        !b.typing(&room, &ann, throttle).await?,
        "throttled on every node"
    );
    assert!(!a.typing(&room, &ann, throttle).await?);
    assert!(b.typing(&room, &bob, throttle).await?, "per user");
    assert!(matches!(next(&mut events).await?, RoomEvent::UserTyping(u) if u == ann));
    assert!(matches!(next(&mut events).await?, RoomEvent::UserTyping(u) if u == bob));
    // The throttle's expiry is the thing under test: let it run out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.typing(&room, &ann, throttle).await?,
        "free again after the throttle"
    );
    assert!(matches!(next(&mut events).await?, RoomEvent::UserTyping(u) if u == ann));
    let after = a.history_before(&room, far_future(), 100).await?;
    assert_eq!(before.len(), after.len(), "typing is never stored");
    Ok(())
}

/// Sends `t` as `user` in `room` through `store`.
pub(crate) async fn say(
    store: &dyn Backend,
    room: &RoomName,
    user: &UserRef,
    t: &str,
) -> Result<MessageId> {
    let t = text(t)?;
    store
        .send(NewMessage {
            room,
            user,
            text: &t,
            floor: None,
            trace: None,
            standing: Standing {
                configured: true,
                ..Standing::default()
            },
        })
        .await?
        .id()
        .context("the message was refused")
}

fn change<'a>(
    room: &'a RoomName,
    id: MessageId,
    user: &'a UserRef,
    text: Option<&'a MessageText>,
) -> MessageChange<'a> {
    MessageChange {
        room,
        id,
        user_id: &user.id,
        text,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    }
}

pub(crate) async fn only_the_author_edits_and_deletes_and_every_node_agrees(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = RoomName::parse("Edits")?;
    let mut events = listen(b.as_ref(), &room).await?;
    let ann = conn(&room, "a1", "ann").user;
    let bob = conn(&room, "b1", "bob").user;
    let m1 = say(a.as_ref(), &room, &ann, "helo").await?;
    let m2 = say(a.as_ref(), &room, &bob, "bob's").await?;
    assert!(
        matches!(next(&mut events).await?, RoomEvent::MessageReceived(message) if message.id == m1)
    );
    assert!(
        matches!(next(&mut events).await?, RoomEvent::MessageReceived(message) if message.id == m2)
    );
    let fixed = text("hello")?;
    assert_eq!(
        a.change(change(&room, m1, &bob, Some(&fixed))).await?,
        ChangeOutcome::Forbidden
    );
    assert_eq!(
        a.change(change(&room, m1, &bob, None)).await?,
        ChangeOutcome::Forbidden
    );
    let nowhere = MessageId { ms: 1, seq: 0 };
    assert_eq!(
        a.change(change(&room, nowhere, &ann, Some(&fixed))).await?,
        ChangeOutcome::NotFound
    );
    assert_eq!(
        a.change(change(&room, m1, &ann, Some(&fixed))).await?,
        ChangeOutcome::Done
    );
    let RoomEvent::MessageEdited(edited) = next(&mut events).await? else {
        bail!("not an edit")
    };
    assert_eq!(edited.id, m1);
    assert_eq!(edited.text, "hello");
    assert_eq!(edited.room, "Edits");
    let edited_ts = edited.edited_ts;
    for node in [&a, &b] {
        let page = node.history_before(&room, far_future(), 2).await?;
        assert_eq!(page[0].text, "hello");
        assert_eq!(page[0].edited_ts, Some(edited_ts));
        assert_eq!(
            (page[0].id, page[0].ts),
            (m1, m1.ms),
            "keeps its id and place"
        );
        assert_eq!(page[1].edited_ts, None);
    }
    assert_eq!(
        b.change(change(&room, m1, &ann, None)).await?,
        ChangeOutcome::Done
    );
    assert!(matches!(next(&mut events).await?, RoomEvent::MessageDeleted(d) if d.id == m1));
    assert_eq!(
        a.change(change(&room, m1, &ann, Some(&fixed))).await?,
        ChangeOutcome::NotFound,
        "a deletion wins over a later edit"
    );
    assert_eq!(
        a.change(change(&room, m1, &ann, None)).await?,
        ChangeOutcome::NotFound
    );
    for node in [&a, &b] {
        // The markers of `listen` came before m1: a page of two reaches past it.
        let page = node.history_before(&room, far_future(), 2).await?;
        assert_eq!(page.len(), 2);
        assert_eq!(page[1].id, m2);
        assert_ne!(page[0].id, m1);
        let after = node.history_after(&room, page[0].id, 10).await?;
        assert_eq!(after.iter().map(|m| m.id).collect::<Vec<_>>(), [m2]);
    }
    Ok(())
}

pub(crate) async fn a_reconnect_with_since_gets_the_changes_it_missed(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Changes")?;
    let ann = conn(&room, "a1", "ann").user;
    let m1 = say(a.as_ref(), &room, &ann, "one").await?;
    let m2 = say(a.as_ref(), &room, &ann, "two").await?;
    let m3 = say(a.as_ref(), &room, &ann, "three").await?;
    // The client saw up to m2, then went away.
    let (first, again, third) = (text("1")?, text("one!")?, text("3")?);
    for edit in [
        change(&room, m1, &ann, Some(&first)),
        change(&room, m1, &ann, Some(&again)),
        change(&room, m2, &ann, None),
        change(&room, m3, &ann, Some(&third)),
    ] {
        assert_eq!(a.change(edit).await?, ChangeOutcome::Done);
    }
    let c = conn(&room, "x", "ann");
    let request = JoinRequest {
        connection: &c,
        session: None,
        since: Some(m2),
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    let JoinOutcome::Joined(s) = a.join(request, false).await? else {
        bail!("revoked")
    };
    assert!(s.recovered);
    let history = s.history.clone();
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].id, history[0].text.as_str()), (m3, "3"));
    assert_eq!(s.changes.len(), 2, "{:?}", s.changes);
    assert!(
        matches!(&s.changes[0], Change::Edited { id, text, .. } if *id == m1 && text == "one!")
    );
    assert_eq!(
        s.changes[1],
        Change::Deleted {
            id: m2,
            deleted: true
        }
    );
    assert_eq!(a.changes_after(&room, m2).await?, s.changes);
    let plain = join(a.as_ref(), &conn(&room, "y", "bob")).await?;
    assert!(plain.changes.is_empty(), "no since, no changes");
    let texts: Vec<String> = plain.history.clone().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["one!", "3"]);
    Ok(())
}

pub(crate) async fn a_change_log_trimmed_past_since_is_not_recovered(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Churn")?;
    let ann = conn(&room, "a1", "ann").user;
    let m1 = say(a.as_ref(), &room, &ann, "v0").await?;
    let versions = chat_store::history::CHANGES_KEPT + 200;
    for i in 1..=versions {
        let t = text(&format!("v{i}"))?;
        assert_eq!(
            a.change(change(&room, m1, &ann, Some(&t))).await?,
            ChangeOutcome::Done
        );
    }
    let c = conn(&room, "x", "bob");
    let request = JoinRequest {
        connection: &c,
        session: None,
        since: Some(m1),
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    let JoinOutcome::Joined(s) = a.join(request, false).await? else {
        bail!("revoked")
    };
    assert!(!s.recovered, "changes since may be missing");
    let history = s.history.clone();
    assert_eq!(
        history[0].text,
        format!("v{versions}"),
        "the fresh history is right"
    );
    Ok(())
}

pub(crate) async fn unread_counts_follow_one_read_marker_per_user_on_every_node(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let (room, other) = (RoomName::parse("Unread")?, RoomName::parse("Quiet")?);
    let rooms = [room.clone(), other.clone()];
    let ann = conn(&room, "a1", "ann").user;
    let m1 = say(a.as_ref(), &room, &ann, "1").await?;
    let m2 = say(a.as_ref(), &room, &ann, "2").await?;
    let counts = |v: Vec<(RoomName, u64)>| v.into_iter().map(|(_, n)| n).collect::<Vec<_>>();
    assert_eq!(
        counts(b.unread_counts(&rooms, "reader").await?),
        [0, 0],
        "never read: 0"
    );
    a.mark_read(&room, "reader", m1).await?;
    assert_eq!(counts(b.unread_counts(&rooms, "reader").await?), [1, 0]);
    let m3 = say(b.as_ref(), &room, &ann, "3").await?;
    assert_eq!(counts(a.unread_counts(&rooms, "reader").await?), [2, 0]);
    let device = conn(&room, "b9", "reader");
    assert_eq!(join(b.as_ref(), &device).await?.unread, 2, "welcome.unread");
    b.mark_read(&room, "reader", m3).await?;
    a.mark_read(&room, "reader", m2).await?;
    assert_eq!(
        counts(a.unread_counts(&rooms, "reader").await?),
        [0, 0],
        "never backwards"
    );
    assert_eq!(
        counts(a.unread_counts(&rooms, "ann").await?),
        [0, 0],
        "per user"
    );
    say(a.as_ref(), &room, &ann, "4").await?;
    assert_eq!(counts(b.unread_counts(&rooms, "reader").await?), [1, 0]);
    Ok(())
}

/// Joins `c` asking for what came after `since`.
async fn join_since(store: &dyn Backend, c: &Connection, since: MessageId) -> Result<Snapshot> {
    let request = JoinRequest {
        connection: c,
        session: None,
        since: Some(since),
        history_limit: 100,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    match store.join(request, false).await? {
        JoinOutcome::Joined(s) => Ok(s),
        JoinOutcome::Revoked => bail!("unexpectedly revoked"),
        JoinOutcome::Unknown => bail!("unexpectedly unknown"),
    }
}

/// `user`'s unread count in `room`.
pub(crate) async fn unread_in(store: &dyn Backend, room: &RoomName, user: &str) -> Result<u64> {
    let counts = store
        .unread_counts(std::slice::from_ref(room), user)
        .await?;
    Ok(counts.into_iter().map(|(_, n)| n).sum())
}

/// The largest id a client may name, and the smallest.
const MAX_ID: MessageId = MessageId {
    ms: u64::MAX,
    seq: u64::MAX,
};
const ZERO_ID: MessageId = MessageId { ms: 0, seq: 0 };

pub(crate) async fn boundary_ids_mean_nothing_newer_or_nothing_older(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Bounds")?;
    let ann = conn(&room, "a1", "ann").user;
    let m1 = say(a.as_ref(), &room, &ann, "one").await?;
    let m2 = say(a.as_ref(), &room, &ann, "two").await?;
    let s = join_since(a.as_ref(), &conn(&room, "x", "bob"), MAX_ID).await?;
    assert!(s.recovered, "nothing newer than the largest id");
    assert!(s.history.is_empty());
    assert!(a.history_before(&room, ZERO_ID, 100).await?.is_empty());
    assert!(a.history_after(&room, MAX_ID, 100).await?.is_empty());
    assert_eq!(a.history_before(&room, MAX_ID, 100).await?.len(), 2);
    assert!(a.changes_after(&room, MAX_ID).await?.is_empty());
    a.mark_read(&room, "bob", MAX_ID).await?;
    assert_eq!(unread_in(a.as_ref(), &room, "bob").await?, 0);
    a.mark_read(&room, "cy", ZERO_ID).await?;
    assert_eq!(unread_in(a.as_ref(), &room, "cy").await?, 2);
    a.mark_read(&room, "dee", m1).await?;
    assert_eq!(unread_in(a.as_ref(), &room, "dee").await?, 1);
    assert_eq!(
        a.change(change(&room, MAX_ID, &ann, None)).await?,
        ChangeOutcome::NotFound
    );
    let _ = m2;
    Ok(())
}

pub(crate) async fn deleting_messages_keeps_reconnects_recovered_and_reads_exact(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("Erased")?;
    let ann = conn(&room, "a1", "ann").user;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(say(a.as_ref(), &room, &ann, &format!("m{i}")).await?);
    }
    // A reader saw up to m1; then m2 and m4 were deleted.
    for gone in [ids[2], ids[4]] {
        assert_eq!(
            a.change(change(&room, gone, &ann, None)).await?,
            ChangeOutcome::Done
        );
    }
    let s = join_since(a.as_ref(), &conn(&room, "x", "bob"), ids[1]).await?;
    assert!(s.recovered, "a deletion is not a gap");
    let texts: Vec<String> = s.history.clone().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["m3"]);
    assert_eq!(
        a.change(change(&room, ids[2], &ann, None)).await?,
        ChangeOutcome::NotFound,
        "deleted once"
    );
    a.mark_read(&room, "bob", ids[3]).await?;
    assert_eq!(
        unread_in(a.as_ref(), &room, "bob").await?,
        0,
        "read up to the newest message still there"
    );
    a.mark_read(&room, "cy", ids[1]).await?;
    assert_eq!(
        unread_in(a.as_ref(), &room, "cy").await?,
        2,
        "m3 and m4 (the counter counts the deleted one after the first unread)"
    );
    Ok(())
}

pub(crate) async fn a_reconnect_gets_every_change_since_or_is_not_recovered(
    nodes: &dyn Nodes,
) -> Result<()> {
    let a = nodes.node("node-a");
    let room = RoomName::parse("ManyEdits")?;
    let ann = conn(&room, "a1", "ann").user;
    let total = chat_store::history::CHANGES_KEPT + 50;
    let mut ids = Vec::new();
    for i in 0..total {
        ids.push(say(a.as_ref(), &room, &ann, &format!("m{i}")).await?);
    }
    let since = *ids.last().context("sent")?;
    let mut edited = 0;
    for id in &ids {
        let t = text(&format!("edited {id}"))?;
        if a.change(change(&room, *id, &ann, Some(&t))).await? == ChangeOutcome::Done {
            edited += 1;
        }
    }
    let s = join_since(a.as_ref(), &conn(&room, "x", "bob"), since).await?;
    assert!(
        !s.recovered || s.changes.len() == edited,
        "recovered with {} of {edited} changes",
        s.changes.len()
    );
    Ok(())
}

/// Generates one `#[tokio::test]` per suite function for a harness expression.
#[macro_export]
macro_rules! behaviour_tests {
    ($harness:expr) => {
        $crate::behaviour_tests!(@each $harness;
            two_tabs_on_two_nodes_at_once_enter_once_and_exit_once,
            a_user_back_within_the_grace_causes_no_events,
            a_dead_node_is_swept_once_in_its_own_rooms_and_its_users_exit_once,
            a_node_taken_as_dead_while_alive_carries_on_under_a_new_id,
            a_draining_node_hands_its_exits_over_to_a_survivor,
            a_followed_room_misses_nothing_and_an_unfollowed_one_is_quiet,
            messages_are_stored_in_order_and_paged_back,
            a_floor_keeps_ids_increasing,
            a_revoked_session_cannot_join_and_subscribers_hear_of_it,
            restore_is_silent_after_data_loss_and_loud_after_a_sweep,
            typing_is_throttled_per_user_across_nodes_and_never_stored,
            only_the_author_edits_and_deletes_and_every_node_agrees,
            a_reconnect_with_since_gets_the_changes_it_missed,
            unread_counts_follow_one_read_marker_per_user_on_every_node,
            a_change_log_trimmed_past_since_is_not_recovered,
            boundary_ids_mean_nothing_newer_or_nothing_older,
            deleting_messages_keeps_reconnects_recovered_and_reads_exact,
            a_reconnect_gets_every_change_since_or_is_not_recovered,
            private_rooms_admit_members_only_and_removal_refuses_older_tokens,
            roles_posting_and_mutes_hold_where_messages_are_stored,
            deleting_a_room_closes_it_for_everyone,
            people_lists_and_direct_rooms_are_found_again,
        );
    };
    (@each $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() -> anyhow::Result<()> {
                let harness = $harness;
                behaviour::$name(&harness).await
            }
        )*
    };
}
