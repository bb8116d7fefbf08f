//! What is derived from rooms to find them: [`Directory`] and its two
//! implementations. A user's list of rooms, the directory of public rooms,
//! the one direct room of a set of people, and the people who have signed in.
//!
//! A room's slot ([`crate::rooms`]) is the truth; these indexes are written
//! after it by the web service and read with it, so an index entry left
//! behind by a crash (a deleted room still listed, a removed member's list
//! still naming the room) is skipped where it is read and repaired there.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `chat:user:<U>:rooms` | set | the made rooms in user `U`'s list |
//! | `chat:directory` | hash | public room id → `{name, topic, groups}` (JSON) |
//! | `chat:direct:<ids>` | string | the direct room of the sorted member ids (tab-separated) |
//! | `chat:users` | hash | user id → `{name, groups}` (JSON) of everyone who signed in |
//! | `chat:users:names` | sorted set | `<lowercase name>\0<id>`, all at score 0, for finding people by name |

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use chat_core::{RoomName, UserRef};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::memory::MemoryBackend;
use crate::redis::RedisBackend;
use crate::schema::PREFIX;

/// A public room as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Its display name.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// The groups it is bound to.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Someone who has signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownUser {
    /// Their display name at their last sign-in.
    pub name: String,
    /// Their identity provider's groups at their last sign-in.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Indexes for finding rooms and people.
#[async_trait]
pub trait Directory: Send + Sync {
    /// Records a sign-in; answers what was known of the user before (`None`:
    /// their first).
    async fn remember_user(
        &self,
        user: &UserRef,
        groups: &[String],
    ) -> Result<Option<KnownUser>, StoreError>;
    /// What is known of each of `ids` (`None`: never signed in).
    async fn known_users(&self, ids: &[String]) -> Result<Vec<Option<KnownUser>>, StoreError>;
    /// Up to `limit` people whose name starts with `prefix` (case-insensitive).
    async fn users_named(&self, prefix: &str, limit: usize) -> Result<Vec<UserRef>, StoreError>;
    /// The made rooms in `user`'s list.
    async fn list_of(&self, user: &str) -> Result<Vec<RoomName>, StoreError>;
    /// Puts `room` in (`true`) or takes it out of each of `users`' lists.
    async fn set_listed(
        &self,
        users: &[String],
        room: &RoomName,
        listed: bool,
    ) -> Result<(), StoreError>;
    /// Lists a public room in the directory, or (`None`) takes it out.
    async fn set_listing(
        &self,
        room: &RoomName,
        listing: Option<&Listing>,
    ) -> Result<(), StoreError>;
    /// Every public room in the directory.
    async fn listings(&self) -> Result<Vec<(RoomName, Listing)>, StoreError>;
    /// The direct room of `people` (sorted, deduplicated ids): the one
    /// already recorded, or `candidate`, recorded now.
    async fn direct_room(
        &self,
        people: &[String],
        candidate: &RoomName,
    ) -> Result<RoomName, StoreError>;
}

fn user_rooms(user: &str) -> String {
    format!("{PREFIX}user:{user}:rooms")
}

fn directory_key() -> String {
    format!("{PREFIX}directory")
}

fn direct_key(people: &[String]) -> String {
    format!("{PREFIX}direct:{}", people.join("\t"))
}

fn users_key() -> String {
    format!("{PREFIX}users")
}

fn names_key() -> String {
    format!("{PREFIX}users:names")
}

/// A user's entry in the name index.
fn name_entry(name: &str, id: &str) -> String {
    format!("{}\0{id}", name.to_lowercase())
}

/// Listings in the directory's order: by name, whatever the case.
fn by_name(mut listings: Vec<(RoomName, Listing)>) -> Vec<(RoomName, Listing)> {
    listings.sort_by_key(|(_, l)| l.name.to_lowercase());
    listings
}

fn decode<T: for<'de> Deserialize<'de>>(json: Option<String>) -> Option<T> {
    json.and_then(|j| serde_json::from_str(&j).ok())
}

// On Redis.

#[async_trait]
impl Directory for RedisBackend {
    async fn remember_user(
        &self,
        user: &UserRef,
        groups: &[String],
    ) -> Result<Option<KnownUser>, StoreError> {
        let before: Option<String> = self
            .client
            .hget(users_key(), user.id.as_str())
            .await
            .map_err(StoreError::redis("HGET users"))?;
        let before: Option<KnownUser> = decode(before);
        let now = KnownUser {
            name: user.name.clone(),
            groups: groups.to_vec(),
        };
        let json =
            serde_json::to_string(&now).map_err(|e| StoreError::reply("user", e.to_string()))?;
        let _: () = self
            .client
            .hset(users_key(), (user.id.as_str(), json))
            .await
            .map_err(StoreError::redis("HSET users"))?;
        if let Some(old) = before.as_ref().filter(|old| old.name != now.name) {
            let _: () = self
                .client
                .zrem(names_key(), name_entry(&old.name, &user.id))
                .await
                .map_err(StoreError::redis("ZREM names"))?;
        }
        let _: () = self
            .client
            .custom(
                fred::cmd!("ZADD"),
                vec![
                    Value::from(names_key()),
                    Value::from(0),
                    Value::from(name_entry(&now.name, &user.id)),
                ],
            )
            .await
            .map_err(StoreError::redis("ZADD names"))?;
        Ok(before)
    }

    async fn known_users(&self, ids: &[String]) -> Result<Vec<Option<KnownUser>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<Option<String>> = self
            .client
            .hmget(users_key(), ids.to_vec())
            .await
            .map_err(StoreError::redis("HMGET users"))?;
        Ok(found.into_iter().map(decode).collect())
    }

    async fn users_named(&self, prefix: &str, limit: usize) -> Result<Vec<UserRef>, StoreError> {
        let prefix = prefix.to_lowercase();
        // Every name that starts with the prefix sorts between it and the
        // prefix followed by the greatest code point.
        let entries: Vec<String> = self
            .client
            .custom(
                fred::cmd!("ZRANGEBYLEX"),
                vec![
                    Value::from(names_key()),
                    Value::from(format!("[{prefix}")),
                    Value::from(format!("[{prefix}\u{10FFFF}")),
                    Value::from("LIMIT"),
                    Value::from(0),
                    Value::from(i64::try_from(limit).unwrap_or(20)),
                ],
            )
            .await
            .map_err(StoreError::redis("ZRANGEBYLEX names"))?;
        let ids: Vec<String> = entries
            .iter()
            .filter_map(|e| e.split_once('\0').map(|(_, id)| id.to_owned()))
            .collect();
        let known = self.known_users(&ids).await?;
        Ok(ids
            .into_iter()
            .zip(known)
            .filter_map(|(id, k)| Some(UserRef { id, name: k?.name }))
            .collect())
    }

    async fn list_of(&self, user: &str) -> Result<Vec<RoomName>, StoreError> {
        let rooms: Vec<String> = self
            .client
            .smembers(user_rooms(user))
            .await
            .map_err(StoreError::redis("SMEMBERS user rooms"))?;
        let mut rooms: Vec<RoomName> = rooms
            .iter()
            .filter_map(|r| RoomName::parse(r).ok())
            .collect();
        rooms.sort();
        Ok(rooms)
    }

    async fn set_listed(
        &self,
        users: &[String],
        room: &RoomName,
        listed: bool,
    ) -> Result<(), StoreError> {
        let pipeline = self.client.pipeline();
        for user in users {
            let queued = if listed {
                pipeline
                    .sadd::<(), _, _>(user_rooms(user), room.as_str())
                    .await
            } else {
                pipeline
                    .srem::<(), _, _>(user_rooms(user), room.as_str())
                    .await
            };
            queued.map_err(StoreError::redis("queue user rooms"))?;
        }
        let _: Vec<Value> = pipeline
            .all()
            .await
            .map_err(StoreError::redis("user rooms"))?;
        Ok(())
    }

    async fn set_listing(
        &self,
        room: &RoomName,
        listing: Option<&Listing>,
    ) -> Result<(), StoreError> {
        match listing {
            Some(listing) => {
                let json = serde_json::to_string(listing)
                    .map_err(|e| StoreError::reply("listing", e.to_string()))?;
                self.client
                    .hset::<(), _, _>(directory_key(), (room.as_str(), json))
                    .await
            }
            None => {
                self.client
                    .hdel::<(), _, _>(directory_key(), room.as_str())
                    .await
            }
        }
        .map_err(StoreError::redis("directory"))
    }

    async fn listings(&self) -> Result<Vec<(RoomName, Listing)>, StoreError> {
        let all: HashMap<String, String> = self
            .client
            .hgetall(directory_key())
            .await
            .map_err(StoreError::redis("HGETALL directory"))?;
        Ok(by_name(
            all.into_iter()
                .filter_map(|(id, json)| Some((RoomName::parse(&id).ok()?, decode(Some(json))?)))
                .collect(),
        ))
    }

    async fn direct_room(
        &self,
        people: &[String],
        candidate: &RoomName,
    ) -> Result<RoomName, StoreError> {
        // SET NX GET: the room recorded first wins, in one command.
        let before: Option<String> = self
            .client
            .custom(
                fred::cmd!("SET"),
                vec![
                    Value::from(direct_key(people)),
                    Value::from(candidate.as_str()),
                    Value::from("NX"),
                    Value::from("GET"),
                ],
            )
            .await
            .map_err(StoreError::redis("SET direct"))?;
        match before {
            None => Ok(candidate.clone()),
            Some(room) => {
                RoomName::parse(&room).map_err(|e| StoreError::reply("direct room", e.to_string()))
            }
        }
    }
}

// In memory.

/// The indexes, in memory.
#[derive(Default)]
pub(crate) struct DirectoryState {
    users: BTreeMap<String, KnownUser>,
    lists: HashMap<String, BTreeSet<RoomName>>,
    listings: BTreeMap<RoomName, Listing>,
    direct: HashMap<Vec<String>, RoomName>,
}

#[async_trait]
impl Directory for MemoryBackend {
    async fn remember_user(
        &self,
        user: &UserRef,
        groups: &[String],
    ) -> Result<Option<KnownUser>, StoreError> {
        let known = KnownUser {
            name: user.name.clone(),
            groups: groups.to_vec(),
        };
        Ok(self
            .hub
            .lock()
            .directory
            .users
            .insert(user.id.clone(), known))
    }

    async fn known_users(&self, ids: &[String]) -> Result<Vec<Option<KnownUser>>, StoreError> {
        let s = self.hub.lock();
        Ok(ids
            .iter()
            .map(|id| s.directory.users.get(id).cloned())
            .collect())
    }

    async fn users_named(&self, prefix: &str, limit: usize) -> Result<Vec<UserRef>, StoreError> {
        let prefix = prefix.to_lowercase();
        let s = self.hub.lock();
        let mut found: Vec<(String, UserRef)> = s
            .directory
            .users
            .iter()
            .filter(|(_, u)| u.name.to_lowercase().starts_with(&prefix))
            .map(|(id, u)| {
                (
                    name_entry(&u.name, id),
                    UserRef {
                        id: id.clone(),
                        name: u.name.clone(),
                    },
                )
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found.into_iter().take(limit).map(|(_, u)| u).collect())
    }

    async fn list_of(&self, user: &str) -> Result<Vec<RoomName>, StoreError> {
        let s = self.hub.lock();
        Ok(s.directory
            .lists
            .get(user)
            .map_or_else(Vec::new, |l| l.iter().cloned().collect()))
    }

    async fn set_listed(
        &self,
        users: &[String],
        room: &RoomName,
        listed: bool,
    ) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        for user in users {
            let list = s.directory.lists.entry(user.clone()).or_default();
            if listed {
                list.insert(room.clone());
            } else {
                list.remove(room);
            }
        }
        Ok(())
    }

    async fn set_listing(
        &self,
        room: &RoomName,
        listing: Option<&Listing>,
    ) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        match listing {
            Some(l) => s.directory.listings.insert(room.clone(), l.clone()),
            None => s.directory.listings.remove(room),
        };
        Ok(())
    }

    async fn listings(&self) -> Result<Vec<(RoomName, Listing)>, StoreError> {
        let s = self.hub.lock();
        Ok(by_name(
            s.directory
                .listings
                .iter()
                .map(|(r, l)| (r.clone(), l.clone()))
                .collect(),
        ))
    }

    async fn direct_room(
        &self,
        people: &[String],
        candidate: &RoomName,
    ) -> Result<RoomName, StoreError> {
        let mut s = self.hub.lock();
        Ok(s.directory
            .direct
            .entry(people.to_vec())
            .or_insert_with(|| candidate.clone())
            .clone())
    }
}
