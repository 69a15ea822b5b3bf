//! Keyset positions for cursor pagination (never OFFSET) and their opaque
//! string form.
//!
//! A cursor is `base64url(json([order tag, sort value, id]))`. The tag names
//! the connection and order it came from, so a cursor from one list given to
//! another is rejected as bad input instead of silently paging wrongly.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

/// The sort value of the last row seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SortValue {
    /// A timestamp, in microseconds since the epoch (Postgres precision).
    Time(i64),
    /// An integer column (counts).
    Int(i64),
    /// A nullable float column, as its bit pattern so the key is hashable.
    Float(Option<u64>),
    /// A text column.
    Text(String),
}

/// A position in a keyset-ordered list: sort value plus the row id tie-break.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Keyset {
    /// Sort value of the row.
    pub value: SortValue,
    /// Id of the row.
    pub id: i64,
}

impl Keyset {
    /// Position of a row sorted by a timestamp.
    pub fn time(at: DateTime<Utc>, id: i64) -> Self {
        Self {
            value: SortValue::Time(at.timestamp_micros()),
            id,
        }
    }

    /// The timestamp, when this keyset sorts by one.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match self.value {
            SortValue::Time(us) => DateTime::from_timestamp_micros(us),
            _ => None,
        }
    }

    /// The integer, when this keyset sorts by one.
    pub fn as_int(&self) -> Option<i64> {
        match self.value {
            SortValue::Int(v) => Some(v),
            _ => None,
        }
    }

    /// Encodes the opaque cursor string for the list tagged `tag`.
    pub fn encode(&self, tag: &str) -> String {
        // a tuple is a JSON array: the same bytes as building a `json!`
        // value, without its allocations (one cursor per edge of every page)
        let json = match &self.value {
            SortValue::Time(v) | SortValue::Int(v) => serde_json::to_vec(&(tag, v, self.id)),
            SortValue::Float(v) => serde_json::to_vec(&(tag, v.map(f64::from_bits), self.id)),
            SortValue::Text(v) => serde_json::to_vec(&(tag, v, self.id)),
        };
        // serializing strings and numbers into a Vec cannot fail
        URL_SAFE_NO_PAD.encode(json.unwrap_or_default())
    }

    /// Decodes a cursor made by [`Keyset::encode`] with the same tag; `kind`
    /// says which [`SortValue`] variant the list sorts by.
    pub fn decode(cursor: &str, tag: &str, kind: SortKind) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
        let (t, value, id): (String, serde_json::Value, i64) =
            serde_json::from_slice(&bytes).ok()?;
        if t != tag {
            return None;
        }
        let value = match kind {
            SortKind::Time => SortValue::Time(value.as_i64()?),
            SortKind::Int => SortValue::Int(value.as_i64()?),
            SortKind::Float if value.is_null() => SortValue::Float(None),
            SortKind::Float => SortValue::Float(Some(value.as_f64()?.to_bits())),
            // Postgres text cannot hold NUL: such a cursor was not made here
            SortKind::Text => {
                SortValue::Text(value.as_str().filter(|s| !s.contains('\0'))?.to_owned())
            }
        };
        Some(Self { value, id })
    }
}

/// Which kind of value a list sorts by.
#[derive(Clone, Copy, Debug)]
pub enum SortKind {
    /// [`SortValue::Time`]
    Time,
    /// [`SortValue::Int`]
    Int,
    /// [`SortValue::Float`]
    Float,
    /// [`SortValue::Text`]
    Text,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_kind_and_rejects_foreign_tags() {
        let cases = [
            (
                Keyset {
                    value: SortValue::Time(1_732_000_000_123_456),
                    id: 7,
                },
                SortKind::Time,
            ),
            (
                Keyset {
                    value: SortValue::Int(42),
                    id: 8,
                },
                SortKind::Int,
            ),
            (
                Keyset {
                    value: SortValue::Float(Some(7.25f64.to_bits())),
                    id: 9,
                },
                SortKind::Float,
            ),
            (
                Keyset {
                    value: SortValue::Float(None),
                    id: 10,
                },
                SortKind::Float,
            ),
            (
                Keyset {
                    value: SortValue::Text("Ünïcode \"q\"".into()),
                    id: 11,
                },
                SortKind::Text,
            ),
        ];
        for (k, kind) in cases {
            let c = k.encode("T");
            // cursors handed out before this encoding stay valid, and equal
            let value = match &k.value {
                SortValue::Time(v) | SortValue::Int(v) => serde_json::json!(v),
                SortValue::Float(v) => serde_json::json!(v.map(f64::from_bits)),
                SortValue::Text(v) => serde_json::json!(v),
            };
            let earlier = serde_json::json!(["T", value, k.id]).to_string();
            assert_eq!(c, URL_SAFE_NO_PAD.encode(earlier));
            assert_eq!(Keyset::decode(&c, "T", kind), Some(k.clone()));
            assert_eq!(Keyset::decode(&c, "U", kind), None);
        }
        assert_eq!(Keyset::decode("not a cursor!", "T", SortKind::Int), None);
    }
}
