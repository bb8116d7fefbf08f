//! Rooms as data, on every backend: who may join and post is decided where
//! messages are stored, and losing access reaches every subscriber.

use std::time::Duration;

use anyhow::{Context, Result};
use chat_core::access::{Posting, Role, RoomKind};
use chat_core::{RoomName, UserRef};
use chat_store::backend::{Backend, FanoutEvent, Subscription};
use chat_store::events::{AccessLoss, AccessLost};
use chat_store::history::{ChangeOutcome, MessageChange, NewMessage, Posted};
use chat_store::presence::{JoinOutcome, JoinRequest};
use chat_store::rooms::{Actor, MemberChange, NewRoom, Refusal, RoomUpdate, Standing};

use super::{Nodes, conn, listen, text};

fn fresh_room(prefix: &str) -> Result<RoomName> {
    Ok(RoomName::parse(&format!("{prefix}-{}", uuid_like()))?)
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A token issued now (ms), for a made room.
fn token_now() -> Standing {
    Standing {
        issued_ms: now_ms(),
        ..Standing::default()
    }
}

fn actor(id: &str) -> Actor<'_> {
    Actor { id, admin: false }
}

async fn make(store: &dyn Backend, room: &RoomName, kind: RoomKind, owner: &str) -> Result<()> {
    let made = store
        .create(&NewRoom {
            id: room,
            name: "Design",
            topic: "",
            kind,
            groups: &[],
            creator: owner,
            others: &[],
        })
        .await?;
    assert_eq!(made, Ok(()));
    Ok(())
}

async fn post(
    store: &dyn Backend,
    room: &RoomName,
    user: &str,
    standing: Standing,
) -> Result<Posted> {
    let who = UserRef {
        id: user.into(),
        name: user.into(),
    };
    Ok(store
        .send(NewMessage {
            room,
            user: &who,
            text: &text("hello")?,
            floor: None,
            trace: None,
            standing,
        })
        .await?)
}

async fn try_join(
    store: &dyn Backend,
    room: &RoomName,
    user: &str,
    standing: Standing,
) -> Result<JoinOutcome> {
    let c = conn(room, &format!("c-{user}-{}", uuid_like()), user);
    let request = JoinRequest {
        connection: &c,
        session: None,
        since: None,
        history_limit: 10,
        standing,
    };
    Ok(store.join(request, false).await?)
}

async fn access_lost(events: &mut Subscription) -> Result<AccessLost> {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await?
            .context("closed")?;
        if let FanoutEvent::AccessLost(_, lost) = e {
            return Ok(lost);
        }
    }
}

pub(crate) async fn private_rooms_admit_members_only_and_removal_refuses_older_tokens(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = fresh_room("private")?;
    let mut events = listen(b.as_ref(), &room).await?;
    make(a.as_ref(), &room, RoomKind::Private, "olga").await?;
    assert!(matches!(
        try_join(a.as_ref(), &room, "mo", token_now()).await?,
        JoinOutcome::Revoked
    ));
    assert_eq!(
        post(a.as_ref(), &room, "mo", token_now()).await?,
        Posted::Forbidden
    );
    let unknown = fresh_room("never-made")?;
    assert!(matches!(
        try_join(a.as_ref(), &unknown, "mo", token_now()).await?,
        JoinOutcome::Unknown
    ));

    let added = a
        .change_member(
            &room,
            actor("olga"),
            false,
            MemberChange::Put(None),
            "mo",
            true,
        )
        .await?;
    assert_eq!(added, Ok(()));
    let before_removal = token_now();
    assert!(matches!(
        try_join(b.as_ref(), &room, "mo", before_removal).await?,
        JoinOutcome::Joined(_)
    ));
    assert!(
        post(b.as_ref(), &room, "mo", before_removal)
            .await?
            .id()
            .is_some()
    );
    // A member may not remove anyone; the owner may.
    let by_member = a
        .change_member(
            &room,
            actor("mo"),
            false,
            MemberChange::Remove,
            "olga",
            false,
        )
        .await?;
    assert_eq!(by_member, Err(Refusal::Forbidden));
    tokio::time::sleep(Duration::from_millis(2)).await;
    let removed = a
        .change_member(
            &room,
            actor("olga"),
            false,
            MemberChange::Remove,
            "mo",
            false,
        )
        .await?;
    assert_eq!(removed, Ok(()));
    let lost = access_lost(&mut events).await?;
    assert_eq!(
        lost,
        AccessLost {
            user: Some("mo".into()),
            reason: AccessLoss::Removed
        }
    );
    assert!(matches!(
        try_join(b.as_ref(), &room, "mo", before_removal).await?,
        JoinOutcome::Revoked
    ));
    assert_eq!(
        post(b.as_ref(), &room, "mo", before_removal).await?,
        Posted::Forbidden
    );
    assert_eq!(a.roles_of(std::slice::from_ref(&room), "mo").await?, [None]);
    Ok(())
}

pub(crate) async fn roles_posting_and_mutes_hold_where_messages_are_stored(
    nodes: &dyn Nodes,
) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = fresh_room("public")?;
    make(a.as_ref(), &room, RoomKind::Public, "olga").await?;
    let t = token_now();
    // A public room is read and posted in without joining.
    let first = post(b.as_ref(), &room, "mia", t)
        .await?
        .id()
        .context("stored")?;
    for (who, change) in [("mia", MemberChange::Join), ("max", MemberChange::Join)] {
        assert_eq!(
            a.change_member(&room, actor(who), false, change, who, true)
                .await?,
            Ok(())
        );
    }
    let promote = MemberChange::Put(Some(Role::Moderator));
    assert_eq!(
        a.change_member(&room, actor("mia"), false, promote, "max", true)
            .await?,
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        a.change_member(&room, actor("olga"), false, promote, "max", true)
            .await?,
        Ok(())
    );

    let announce = RoomUpdate {
        posting: Some(Posting::Moderators),
        ..RoomUpdate::default()
    };
    assert_eq!(
        a.update(&room, actor("max"), false, &announce).await?,
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        a.update(&room, actor("olga"), false, &announce).await?,
        Ok(())
    );
    assert_eq!(post(b.as_ref(), &room, "mia", t).await?, Posted::Forbidden);
    assert!(post(b.as_ref(), &room, "max", t).await?.id().is_some());
    let info = a
        .rooms_info(std::slice::from_ref(&room))
        .await?
        .pop()
        .flatten()
        .context("made")?;
    assert_eq!(info.posting, Posting::Moderators);

    let everyone = RoomUpdate {
        posting: Some(Posting::Everyone),
        ..RoomUpdate::default()
    };
    assert_eq!(
        a.update(&room, actor("olga"), false, &everyone).await?,
        Ok(())
    );
    let hour = Some(now_ms() + 3_600_000);
    assert_eq!(
        a.mute(&room, actor("mia"), false, "max", hour).await?,
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        a.mute(&room, actor("max"), false, "olga", hour).await?,
        Err(Refusal::Forbidden)
    );
    assert_eq!(
        a.mute(&room, actor("max"), false, "mia", hour).await?,
        Ok(())
    );
    assert_eq!(post(b.as_ref(), &room, "mia", t).await?, Posted::Forbidden);
    assert_eq!(
        a.mute(&room, actor("max"), false, "mia", None).await?,
        Ok(())
    );
    assert!(post(b.as_ref(), &room, "mia", t).await?.id().is_some());

    // Moderators delete anyone's message; members only their own.
    let delete = |user_id| MessageChange {
        room: &room,
        id: first,
        user_id,
        text: None,
        standing: t,
    };
    assert_eq!(
        b.change(delete("olga_not_member_yet_mia")).await?,
        ChangeOutcome::Forbidden
    );
    assert_eq!(b.change(delete("max")).await?, ChangeOutcome::Done);
    // The last owner may not leave; a moderator may not remove an owner.
    assert_eq!(
        a.change_member(
            &room,
            actor("olga"),
            false,
            MemberChange::Leave,
            "olga",
            true
        )
        .await?,
        Err(Refusal::Conflict)
    );
    assert_eq!(
        a.change_member(
            &room,
            actor("max"),
            false,
            MemberChange::Remove,
            "olga",
            false
        )
        .await?,
        Err(Refusal::Forbidden)
    );

    let actions: Vec<String> = a
        .audit(&room, None)
        .await?
        .into_iter()
        .rev()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        [
            "room_created",
            "member_joined",
            "member_joined",
            "role_changed",
            "room_updated",
            "room_updated",
            "muted",
            "unmuted",
            "message_deleted"
        ]
    );
    let newest = a.audit(&room, None).await?;
    assert_eq!(newest[0].actor.as_deref(), Some("max"));
    assert_eq!(newest[0].target.as_deref(), Some("mia"));
    Ok(())
}

pub(crate) async fn deleting_a_room_closes_it_for_everyone(nodes: &dyn Nodes) -> Result<()> {
    let (a, b) = (nodes.node("node-a"), nodes.node("node-b"));
    let room = fresh_room("doomed")?;
    let mut events = listen(b.as_ref(), &room).await?;
    make(a.as_ref(), &room, RoomKind::Private, "olga").await?;
    assert_eq!(
        a.delete_room(&room, actor("eve"), false).await?,
        Err(Refusal::NotFound)
    );
    assert_eq!(
        a.delete_room(&room, actor("olga"), false).await?,
        Ok(vec!["olga".to_owned()])
    );
    let lost = access_lost(&mut events).await?;
    assert_eq!(
        lost,
        AccessLost {
            user: None,
            reason: AccessLoss::RoomClosed
        }
    );
    assert!(matches!(
        try_join(b.as_ref(), &room, "olga", token_now()).await?,
        JoinOutcome::Unknown
    ));
    assert_eq!(a.rooms_info(std::slice::from_ref(&room)).await?, [None]);
    let general = RoomName::parse("General")?;
    assert_eq!(
        a.delete_room(&general, actor("olga"), true).await?,
        Err(Refusal::Forbidden)
    );
    Ok(())
}

pub(crate) async fn people_lists_and_direct_rooms_are_found_again(nodes: &dyn Nodes) -> Result<()> {
    let a = nodes.node("node-a");
    let id = format!("u-{}", uuid_like());
    let ann = UserRef {
        id: id.clone(),
        name: format!("Zoë {id}"),
    };
    assert_eq!(a.remember_user(&ann, &["eng".into()]).await?, None);
    let before = a.remember_user(&ann, &[]).await?.context("known")?;
    assert_eq!(before.groups, ["eng"]);
    let found = a.users_named(&format!("zoË {id}"), 20).await?;
    assert_eq!(found, std::slice::from_ref(&ann));
    let people = vec![id.clone(), format!("{id}-b")];
    let first = fresh_room("d")?;
    assert_eq!(a.direct_room(&people, &first).await?, first);
    assert_eq!(a.direct_room(&people, &fresh_room("d")?).await?, first);
    a.set_listed(&people, &first, true).await?;
    assert_eq!(a.list_of(&id).await?, std::slice::from_ref(&first));
    a.set_listed(std::slice::from_ref(&id), &first, false)
        .await?;
    assert!(a.list_of(&id).await?.is_empty());
    Ok(())
}
