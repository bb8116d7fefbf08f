//! Reading the scripts' replies: plain values, and data the scripts encode
//! as JSON with `cjson` (a script's snapshot, a page of message records).

use std::fmt;
use std::marker::PhantomData;

use fred::types::Value;
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::StoreError;

/// A reply that must be a string (an integer reads as its digits).
pub(crate) fn string(operation: &'static str, value: Value) -> Result<String, StoreError> {
    match value {
        // `&str` to `String` by copy: `to_string` would go through `Display`.
        Value::String(s) => Ok(String::from(&*s)),
        Value::Bytes(b) => {
            String::from_utf8(b.to_vec()).map_err(|e| StoreError::reply(operation, e.to_string()))
        }
        Value::Integer(i) => Ok(i.to_string()),
        other => Err(StoreError::reply(
            operation,
            format!("expected a string, got {other:?}"),
        )),
    }
}

/// A reply that must be an integer (or a string of one).
pub(crate) fn integer(operation: &'static str, value: Value) -> Result<i64, StoreError> {
    match value {
        Value::Integer(i) => Ok(i),
        other => string(operation, other)?
            .parse()
            .map_err(|e: std::num::ParseIntError| StoreError::reply(operation, e.to_string())),
    }
}

/// Data a script returned as JSON, decoded into `T`.
pub(crate) fn json<T: DeserializeOwned>(
    operation: &'static str,
    value: Value,
) -> Result<T, StoreError> {
    let json = string(operation, value)?;
    serde_json::from_str(&json).map_err(|e| StoreError::reply(operation, e.to_string()))
}

/// A list in a script's JSON. Lua has one table type, so `cjson` encodes an
/// empty list as `{}`: read as an empty list here.
#[derive(Debug)]
pub(crate) struct LuaList<T>(pub(crate) Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for LuaList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = LuaList<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list (or {} for an empty one)")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(LuaList(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                match map.next_key::<serde::de::IgnoredAny>()? {
                    None => Ok(LuaList(Vec::new())),
                    Some(_) => Err(serde::de::Error::custom("a map where a list was due")),
                }
            }
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_with_lua_s_empty_table() {
        let read = |text: &str| json::<LuaList<u32>>("test", Value::from(text));
        assert_eq!(read("[1,2]").expect("list").0, [1, 2]);
        assert!(read("[]").expect("empty").0.is_empty());
        assert!(read("{}").expect("cjson's empty table").0.is_empty());
        assert!(read(r#"{"a":1}"#).is_err());
        assert!(read("nope").is_err());
    }
}
