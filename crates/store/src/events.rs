//! Change events: what a committed mutation tells subscribers.

use std::fmt;
use std::str::FromStr;

use crate::clock::UnixMillis;
use crate::error::Error;

/// What happened to an entry or group.
///
/// # Examples
/// ```
/// use store::EventKind;
/// assert_eq!(EventKind::DeleteGroup.as_str(), "delete_group");
/// assert_eq!("expired".parse::<EventKind>()?, EventKind::Expired);
/// # Ok::<(), store::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A value was written.
    Set,
    /// A live entry was deleted.
    Delete,
    /// A group was deleted (`key` is `None`).
    DeleteGroup,
    /// An expired entry was removed (lazily, by a purge, or by `delete`).
    Expired,
}

impl EventKind {
    /// `set`, `delete`, `delete_group` or `expired`.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(store::EventKind::Set.as_str(), "set");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Set => "set",
            EventKind::Delete => "delete",
            EventKind::DeleteGroup => "delete_group",
            EventKind::Expired => "expired",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "set" => EventKind::Set,
            "delete" => EventKind::Delete,
            "delete_group" => EventKind::DeleteGroup,
            "expired" => EventKind::Expired,
            other => {
                return Err(Error::invalid(
                    "EventKind::from_str",
                    "kind",
                    format!("{other:?} is not one of set, delete, delete_group, expired"),
                ));
            }
        })
    }
}

/// One committed mutation.
///
/// # Examples
/// ```
/// use store::{Event, EventKind};
/// let e = Event { kind: EventKind::Set, group: "g".into(), key: Some("k".into()),
///                 value: Some("v".into()), version: Some(1), seq: 1, at_ms: 0 };
/// assert_eq!(e.kind.as_str(), "set");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The group (full name for raw handles, local name for scoped ones).
    pub group: String,
    /// The key; `None` for [`EventKind::DeleteGroup`].
    pub key: Option<String>,
    /// The new value, for [`EventKind::Set`].
    pub value: Option<String>,
    /// The new version, for [`EventKind::Set`].
    pub version: Option<u64>,
    /// Sequence number of the mutation: unique and increasing in commit order.
    pub seq: u64,
    /// When it happened (the store clock, Unix ms).
    pub at_ms: UnixMillis,
}
